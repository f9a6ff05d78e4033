"""The quiz session's questions and the differencing merge question, against the runs they come from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.teach.differencing import Merged, row_spread
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY
from packviz.teach.quiz import question_for
from packviz.teach.quiz_session import KINDS, session_questions


def test_a_session_as_long_as_the_kinds_asks_each_kind_once():
    questions = session_questions(7, len(KINDS))
    assert sorted(q.kind for q in questions) == sorted(KINDS)
    merge = next(q for q in questions if q.kind == "merge")
    assert merge.chapter == "differencing" and merge.question.prompt.endswith("Which two rows merge next?")
    # the same seed, the same questions
    assert [q.question.prompt for q in session_questions(7, len(KINDS))] == [q.question.prompt for q in questions]


def _merge_questions(loads):
    trace = CHAPTER_BY_KEY["differencing"].run(loads).traces[0]
    frames = lesson_frames(trace)
    for index in range(len(frames) - 1):
        question = question_for(trace, frames, index)
        if question is not None and question.prompt.endswith("merge next?"):
            yield trace, frames[index].event, frames[index + 1].event, question


@settings(max_examples=30, deadline=None)
@given(loads=st.one_of(
    st.lists(st.integers(1, 200), min_size=12, max_size=12),          # whole tokens
    st.lists(st.sampled_from([5, 5, 5, 7]), min_size=12, max_size=12),  # ties everywhere
    st.lists(st.sampled_from([0, 0, 0, 40]), min_size=12, max_size=12),  # mostly zero
))
def test_the_merge_question_answers_with_the_recorded_merge_and_accepts_only_equal_spreads(loads):
    for trace, before, after, question in _merge_questions([float(v) for v in loads]):
        assert isinstance(before, Merged) and isinstance(after, Merged)
        first, second = sorted((after.into, after.taken))
        assert question.answer == f"rows {first} and {second}"
        assert question.answer in question.options and len(set(question.options)) == len(question.options)
        spread = {r: row_spread(row, trace.weight) for r, row in zip(before.row_ids, before.rows)}
        best = sorted((spread[after.into], spread[after.taken]))
        assert best == sorted(spread.values())[-2:]  # the run merged the two largest spreads
        for option in question.options:
            pair = [int(word) for word in option.removeprefix("rows ").split(" and ")]
            equal = sorted(spread[r] for r in pair) == best
            assert question.is_right(option) == equal, option
            if option != question.answer:
                assert question.reason(option)  # every other option says why


@settings(max_examples=40, deadline=None)
@given(loads=st.one_of(
    st.lists(st.integers(0, 200), min_size=12, max_size=12),
    st.lists(st.sampled_from([5, 5, 5, 7]), min_size=12, max_size=12),
), packs=st.sampled_from([3, 4, 6]))
def test_each_bound_in_the_lb_answer_is_named_with_the_loads_that_make_it(loads, packs):
    """The bound question's answer told the room 'the crowding bounds up to 101' and a wrong option
    'Not this time: 93 some pack must hold ...': each bound now says which loads make it."""
    import re

    import torch

    from packviz.metrics import lower_bounds
    from packviz.teach.quiz_session import bound_terms

    loads = [float(v) for v in loads]
    terms = bound_terms(loads, packs)
    assert [value for value, _ in terms] == lower_bounds(torch.tensor([loads], dtype=torch.float64), packs)[0].tolist()
    for value, words in terms[1:]:
        # the loads a term names add up to it
        loads_words = re.sub(r"the \d+ lightest|holding .*? meet\)", "", words)
        named = [float(v) for v in re.findall(r"\d+(?:\.\d+)?", loads_words)]
        assert sum(named) == value


def test_a_wrong_lb_option_is_told_what_it_is():
    import random

    from packviz.teach.quiz_session import _bound_question

    for seed in range(20):
        question = _bound_question(random.Random(seed)).question
        for option in question.options:
            verdict = question.verdict(option)
            if option == question.answer:
                assert verdict.startswith(f"Right: {option}. Every packing has a pack at least as heavy")
            else:
                assert verdict.startswith(f"Not this time: {option} is ")
                assert f"The answer is {question.answer}." in verdict


def test_every_verdict_reads_as_sentences():
    """'Right: node 1. node 1 is the lightest ...' opened a sentence in lower case."""
    import re

    for question in (q.question for q in session_questions(3, 2 * len(KINDS))):
        for option in question.options:
            assert not re.search(r"\. [a-z]", question.verdict(option).replace("e.g. ", "")), question.verdict(option)
