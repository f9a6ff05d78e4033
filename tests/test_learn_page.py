"""The Learn page under Streamlit's AppTest: every chapter, stepping, links, predictions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from packviz.teach.eplb_lessons import chapter_steps
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY, CHAPTERS
from packviz.teach.narration import fmt, learn
from packviz.trace.timeline import phase_starts

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def learn_page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/learn.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


@pytest.mark.parametrize("key", [chapter.key for chapter in CHAPTERS])
def test_every_chapter_opens_on_its_own_step(key):
    at = learn_page(chapter=key)
    chapter = CHAPTER_BY_KEY[key]
    trace = chapter.run().traces[0]
    frames = lesson_frames(trace)
    assert at.selectbox(key="chapter").value == key
    assert at.get("plotly_chart")
    if chapter.eplb is not None:
        steps = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)
        assert at.session_state.step == 0 and at.info[0].value == steps[0].narration
        return
    step = phase_starts(frames)[chapter.start_phase]
    assert at.session_state.step == step
    assert at.info[0].value == learn(trace, frames, step)
    assert at.query_params["chapter"] == key and at.query_params["step"] == str(step)
    assert any("pseudo" not in h.proto.body and "background: rgba(230, 159, 0" in h.proto.body for h in at.get("html"))


def test_next_and_prev_step_through_the_story_and_the_url_follows():
    at = learn_page(chapter="greedy")
    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    frames = lesson_frames(trace)
    button(at, "next").click().run()
    button(at, "next").click().run()
    assert at.session_state.step == 2
    assert at.info[0].value == learn(trace, frames, 2)
    assert at.query_params["step"] == "2"
    button(at, "prev").click().run()
    assert at.session_state.step == 1
    button(at, "end").click().run()
    assert at.session_state.step == len(frames) - 1


def test_a_shared_link_opens_the_same_step_with_its_loads():
    at = learn_page(chapter="two-swap", step="15", loads="48,20,77,48,48,68,99,82,34,45,72,36")
    trace = CHAPTER_BY_KEY["two-swap"].run().traces[0]
    assert at.info[0].value == learn(trace, lesson_frames(trace), 15)
    edited = learn_page(chapter="greedy", step="0", loads="1,2,3,4,5,6,7,8,90")
    assert "9 items must go into 3 packs" in edited.info[0].value
    assert edited.query_params["loads"] == "1,2,3,4,5,6,7,8,90"


def test_a_broken_link_says_what_it_ignored():
    at = learn_page(chapter="nope", step="3")
    assert any("chapter='nope' was ignored" in w.value for w in at.warning)
    assert at.selectbox(key="chapter").value == CHAPTERS[0].key


def options(at: AppTest, book: str) -> dict[str, object]:
    """The answer buttons of a question (label -> button)."""
    return {b.label: b for b in at.button if b.key.startswith(f"option_{book}_")}


def test_predict_then_reveal_locks_scores_and_says_why():
    at = learn_page(chapter="greedy", step="3", quiz="1")
    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    answer = f"pack {trace.story()[4].pack}"
    wrong = next(option for option in options(at, "predicted") if option != answer)
    options(at, "predicted")[wrong].click().run()
    assert options(at, "predicted")[wrong].proto.type == "primary"  # the pick is shown
    button(at, "reveal_predicted").click().run()
    assert not at.exception, [e.value for e in at.exception]
    told = next(e.value for e in at.error)
    assert f"The answer is {answer}" in told and "more than" in told  # why the wrong pack is wrong
    assert not options(at, "predicted")  # locked: only the verdict, which names the pick
    assert told.startswith(f"Not this time: {wrong}")
    assert not [b for b in at.button if b.key == "reveal_predicted"]
    assert any(c.value == "Score: 0 of 1" for c in at.caption)
    button(at, "next").click().run()
    question_answer = f"pack {trace.story()[5].pack}"
    options(at, "predicted")[question_answer].click().run()
    button(at, "reveal_predicted").click().run()
    assert any(s.value.startswith(f"Right: {question_answer}") for s in at.success)
    assert any(c.value == "Score: 1 of 2" for c in at.caption)


def test_predict_in_the_eplb_chapters_asks_for_the_spare_slot_the_node_and_the_gpu():
    """Replication asks which expert gets the next spare slot and which GPU a replica goes to; the
    hierarchy which node takes a group. Each answer is the next step's, from the real plan."""
    for key, wanted in (("replication", ("Which expert gets it?", "Which GPU gets it?")),
                        ("hierarchy", ("Which node gets it?", "Which expert gets it?", "Which GPU gets it?"))):
        chapter = CHAPTER_BY_KEY[key]
        steps = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)
        for prompt in wanted:
            step = next(i for i, s in enumerate(steps) if s.question and s.question.prompt.endswith(prompt)
                        and not all(s.question.is_right(o) for o in s.question.options))
            at = learn_page(chapter=key, step=str(step), quiz="1")
            question = steps[step].question
            assert any(question.prompt in m.value for m in at.markdown), prompt
            assert set(options(at, "predicted")) == set(question.options)
            wrong = next(o for o in question.options if not question.is_right(o))
            options(at, "predicted")[wrong].click().run()
            button(at, "reveal_predicted").click().run()
            told = next(e.value for e in at.error)
            assert f"The answer is {question.answer}" in told and question.reason(wrong) in told
            next_step = steps[step + 1]
            assert question.answer == next_step.bars.labels[next_step.bars.marked[0]] or \
                question.answer in next_step.narration


def test_predict_says_so_where_there_is_nothing_to_predict():
    at = learn_page(chapter="hierarchy", step="0", quiz="1")
    assert any("Nothing to predict at this step" in c.value for c in at.caption)
    assert at.info  # the narration still says what the step shows


def test_practice_asks_a_fresh_question_from_a_real_run_and_scores_it():
    at = learn_page(chapter="greedy")
    seed = at.session_state.practice_seed
    first = next(iter(options(at, "practiced").values()))
    first.click().run()
    button(at, "reveal_practiced").click().run()
    assert any(c.value.startswith("Score: ") and c.value.endswith(" of 1") for c in at.caption)
    button(at, "another_question").click().run()
    assert at.session_state.practice_seed == seed + 1
    assert options(at, "practiced")


def test_the_last_step_of_the_lesson_recaps_it_in_its_numbers():
    at = learn_page(chapter=CHAPTERS[-1].key)
    button(at, "end").click().run()
    recap = next(s.value for s in at.success if "The lesson in its numbers" in s.value)
    assert "spread of 35" in recap and "to 3 in 3 moves" in recap and "leaves 2 before any swap, the greedy 18" \
        in recap
    chapter = CHAPTER_BY_KEY["aging"]
    aged = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)
    (last_way,), (mean_way,) = ([v for _, v in bar] for bar in aged[-1].bars.parts)
    assert f"next at {fmt(last_way)} on average" in recap and f"at {fmt(mean_way)} (ch. 12)" in recap


def test_present_mode_drops_the_title_and_keeps_the_controls():
    at = learn_page(chapter="one-swap", present="1")
    assert not at.title
    assert {"prev", "next", "play"} <= {b.key for b in at.button}
    assert at.query_params["present"] == "1"


def test_changing_chapter_resets_the_loads_and_step():
    at = learn_page(chapter="greedy", step="5", loads="1,2,3,4,5,6,7,8,90")
    at.selectbox(key="chapter").set_value("two-swap").run()
    assert at.session_state.loads == "48,20,77,48,48,68,99,82,34,45,72,36"
    trace = CHAPTER_BY_KEY["two-swap"].run().traces[0]
    assert at.session_state.step == phase_starts(lesson_frames(trace))["refine"]


def test_play_and_pause_from_inside_the_stepping_fragment():
    at = learn_page(chapter="greedy", step="2")
    button(at, "play").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state.playing
    assert button(at, "play").label == "❚❚ Pause"
    button(at, "play").click().run()
    assert not at.session_state.playing
    assert button(at, "play").label == "▶ Play"
    assert button(at, "next").label == "Next ›"  # the controls stay with the chart


def test_a_students_own_instance_of_any_size_travels_in_the_link():
    at = learn_page(chapter="greedy")
    at.number_input(key="new_packs").set_value(4).run()
    at.number_input(key="new_per_pack").set_value(2).run()
    button(at, "random_loads").click().run()
    assert not at.exception, [e.value for e in at.exception]
    loads = at.session_state.loads.split(",")
    assert at.session_state.packs == 4 and len(loads) == 8 and at.query_params["packs"] == "4"
    assert "8 items must go into 4 packs" in at.info[0].value or at.session_state.step > 0
    button(at, "blank_loads").click().run()
    assert at.session_state.loads == "0,0,0,0,0,0,0,0"
    reopened = learn_page(chapter="greedy", packs="4", loads=at.session_state.loads)
    assert reopened.session_state.packs == 4 and reopened.session_state.loads == "0,0,0,0,0,0,0,0"


def test_the_step_slider_jumps_and_a_chapters_end_offers_the_next_chapter():
    at = learn_page(chapter="greedy")
    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    frames = lesson_frames(trace)
    at.slider(key="step_pick").set_value(5).run()
    assert at.session_state.step == 5 and at.info[0].value == learn(trace, frames, 5)
    assert not [b for b in at.button if b.key == "next_chapter"]
    button(at, "end").click().run()
    button(at, "next_chapter").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state.chapter == "restarts" and at.query_params["chapter"] == "restarts"


def test_the_eplb_chapters_step_through_replication_and_the_hierarchy():
    at = learn_page(chapter="replication")
    steps = chapter_steps(CHAPTER_BY_KEY["replication"].eplb, CHAPTER_BY_KEY["replication"].loads, 3)
    button(at, "next").click().run()
    assert at.info[0].value == steps[1].narration and "load per replica" in steps[1].narration
    button(at, "end").click().run()
    assert at.info[0].value == steps[-1].narration
    button(at, "next_chapter").click().run()
    assert at.session_state.chapter == "hierarchy" and not at.exception
    button(at, "end").click().run()
    assert not any("The lesson in its numbers" in s.value for s in at.success)  # the lesson goes on
    # the number on the button, the title beside it (a whole title was cut with "…")
    assert button(at, "next_chapter").label == "Next chapter: 12 ›"
    assert any(c.value == CHAPTER_BY_KEY["aging"].title.partition(". ")[2] for c in at.caption)
    button(at, "next_chapter").click().run()
    assert at.session_state.chapter == "aging" and not at.exception
    button(at, "end").click().run()
    assert any("The lesson in its numbers" in s.value for s in at.success)


def test_an_eplb_chapter_takes_a_students_own_experts_slots_groups_nodes_and_gpus():
    """Their own instance: 12 experts in 4 groups, 2 nodes, 4 GPUs, 16 slots, random loads; the
    shape travels in the link, and a shape that cannot work says why and keeps the chapter's."""
    at = learn_page(chapter="hierarchy")
    for key, value in (("new_experts", 12), ("new_slots", 16), ("new_groups", 4), ("new_nodes", 2),
                       ("new_gpus", 4)):
        at.number_input(key=key).set_value(value)
    button(at, "random_loads").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["shape"] == "16,4,2" and len(at.query_params["loads"].split(",")) == 12
    assert not at.warning
    steps = chapter_steps({"slots": 16, "groups": 4, "nodes": 2},
                          tuple(float(v) for v in at.query_params["loads"].split(",")), 4)
    assert at.info[0].value == steps[0].narration and "12 experts in 4 groups" in steps[0].narration
    other = learn_page(chapter="replication", shape="7", packs="3")
    assert any("does not fit this chapter" in w.value and "split evenly over 3 GPUs" in w.value
               for w in other.warning)


def test_a_quiz_session_draws_questions_across_chapters_scores_them_and_replays_from_its_link():
    from packviz.teach.quiz_session import session_questions

    questions = session_questions(123, 3)
    assert len({q.kind for q in questions}) == 3  # each a different idea
    at = learn_page(chapter="greedy", quiz_seed="123", quiz_size="3")
    assert at.query_params["quiz_seed"] == "123"
    for number, asked in enumerate(questions):
        assert any(asked.question.prompt in m.value for m in at.markdown), number
        assert at.get("progress")[0].proto.value == int(100 * number / 3)  # the bar fills as answers come
        pick = asked.question.answer if number != 1 else next(
            o for o in asked.question.options if not asked.question.is_right(o))
        options(at, "quizbook_123")[pick].click().run()
        button(at, "reveal_quizbook_123").click().run()
        button(at, "next_question").click().run()
        assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Final score: 2 of 3." for s in at.success)
    # a chapter's number in a caption is text, not a Markdown list's
    assert not any(re.match(r"\d+\. ", c.value) for c in at.caption)
    # the link replays the same questions in another session
    again = learn_page(chapter="greedy", quiz_seed="123", quiz_size="3")
    assert any(questions[0].question.prompt in m.value for m in again.markdown)


def test_predict_in_the_differencing_chapter_asks_which_rows_merge_next():
    from packviz.teach.quiz import question_for

    chapter = CHAPTER_BY_KEY["differencing"]
    trace = chapter.run().traces[0]
    frames = lesson_frames(trace)
    step, question = next((i, q) for i in range(len(frames) - 1)
                          if (q := question_for(trace, frames, i)) is not None and q.prompt.endswith("merge next?"))
    at = learn_page(chapter="differencing", step=str(step), quiz="1")
    assert any(question.prompt in m.value for m in at.markdown)
    wrong = next(o for o in question.options if not question.is_right(o))
    options(at, "predicted")[wrong].click().run()
    button(at, "reveal_predicted").click().run()
    told = next(e.value for e in at.error)
    assert f"The answer is {question.answer}" in told and "below the two largest" in told
    # the answer is the merge the next step shows
    merged = frames[step + 1].event
    assert question.answer == f"rows {min(merged.into, merged.taken)} and {max(merged.into, merged.taken)}"


@pytest.mark.parametrize("key", ["replication", "hierarchy"])
def test_the_eplb_chapters_offer_their_steps_as_a_gif_in_both_themes(key):
    at = learn_page(chapter=key)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("GIF, light" in label for label in labels) and any("GIF, dark" in label for label in labels)


def test_predict_in_the_aging_chapter_asks_which_plan_serves_the_next_window_better():
    chapter = CHAPTER_BY_KEY["aging"]
    steps = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)
    step = next(i for i, s in enumerate(steps) if s.question is not None)
    at = learn_page(chapter="aging", step=str(step), quiz="1")
    question = steps[step].question
    assert any(question.prompt in m.value for m in at.markdown)
    wrong = next(o for o in question.options if not question.is_right(o))
    options(at, "predicted")[wrong].click().run()
    button(at, "reveal_predicted").click().run()
    told = next(e.value for e in at.error)
    assert f"The answer is {question.answer}" in told
    button(at, "next").click().run()
    assert any(steps[step + 1].narration in i.value for i in at.info)
