"""Chapter 12, why plans age: every number from the plans' runs on the chapter's windows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.teach.aging_lesson import FOLLOWING, PLAN_A, aging_steps, aging_text, aging_windows
from packviz.teach.lessons import CHAPTER_BY_KEY
from packviz.teach.narration import fmt
from packviz.viz.figures import bars_figure


def _balancedness(totals):
    return sum(totals) / len(totals) / max(totals) if max(totals) > 0 else 1.0


def test_the_windows_are_the_loads_popularity_with_fresh_noise_and_replay_from_the_loads():
    loads = CHAPTER_BY_KEY["aging"].loads
    windows = aging_windows(loads, 30)
    assert windows.shape == (30, len(loads)) and bool((windows.sum(dim=1) == sum(loads)).all())
    assert bool((aging_windows(loads, 30) == windows).all())  # a link replays the same windows
    assert not bool((windows[0] == windows[1]).all())
    # the lasting popularity shows through the noise: the mean of many windows ranks the experts as the loads do
    mean = windows.mean(dim=0)
    assert int(mean.argmax()) == max(range(len(loads)), key=lambda e: loads[e])
    assert int(mean.argmin()) == min(range(len(loads)), key=lambda e: loads[e])


def test_the_steps_numbers_are_the_plans_and_predict_names_the_plan_that_serves_better():
    chapter = CHAPTER_BY_KEY["aging"]
    steps = aging_steps(chapter.loads, chapter.eplb["slots"], chapter.eplb["windows"], chapter.num_packs)
    phases = [step.phase for step in steps]
    assert phases == ["start", "seen", "plan A", "plan B", "next window", "over time"]
    gpus = chapter.num_packs
    following = steps[4].bars.totals
    served_a, served_b = _balancedness(following[:gpus]), _balancedness(following[gpus:])
    assert f"serves {fmt(served_a)}" in steps[4].narration and f"plan B serves {fmt(served_b)}" in steps[4].narration
    planned_a = _balancedness(steps[2].bars.totals)
    assert f"balancedness {fmt(planned_a)}" in steps[2].narration and f"planned {fmt(planned_a)}" in steps[4].narration
    question = steps[3].question
    assert question.answer == (PLAN_A if served_a > served_b else question.options[1])
    wrong = next(o for o in question.options if o != question.answer)
    assert f"{fmt(min(served_a, served_b))}" in question.reason(wrong)
    # every GPU holds as many slots as the cluster gives it, each replica its share of the window's load
    assert all(len(bar) == chapter.eplb["slots"] // gpus for bar in steps[2].bars.parts)
    (mean_a,), (mean_b,) = ([v for _, v in bar] for bar in steps[-1].bars.parts)
    assert f"serves {fmt(mean_a)} on average" in steps[-1].narration
    assert str(FOLLOWING + 1) in steps[-1].bars.title
    text = aging_text(steps)
    assert text.shows_claim == (mean_b > mean_a) and f"{fmt(mean_b)}" in text.text
    # a number in a text is the number on the chart
    totals = next(t for t in bars_figure(steps[-1].bars).data if t.type == "scatter").text
    assert [label.strip("<b>/") for label in totals] == [fmt(mean_a), fmt(mean_b)]
    assert bars_figure(steps[-1].bars).layout.yaxis.title.text.startswith("balancedness")


@settings(max_examples=25, deadline=None)
@given(loads=st.one_of(
    st.lists(st.sampled_from([5, 5, 5, 7]), min_size=8, max_size=8),        # ties
    st.lists(st.sampled_from([0, 0, 0, 40]), min_size=8, max_size=8),       # mostly zero
    st.just([3] * 8),                                                        # all equal
    st.lists(st.integers(0, 10**6), min_size=8, max_size=8),                # huge
))
def test_any_loads_give_a_lesson_whose_texts_match_its_bars(loads):
    steps = aging_steps(tuple(float(v) for v in loads), 12, 4, 4)
    served = steps[4].bars.totals
    for value in (_balancedness(served[:4]), _balancedness(served[4:])):
        assert 0 < value <= 1 and f"{fmt(value)}" in steps[4].narration
    question = steps[3].question
    if question is not None:
        assert question.answer in question.options and len(question.options) == 2
    assert aging_text(steps).text


def test_shapes_that_cannot_work_say_why():
    with pytest.raises(ValueError, match="split evenly"):
        aging_steps((1.0,) * 8, 10, 4, 4)
    with pytest.raises(ValueError, match="at least 2"):
        aging_steps((1.0,) * 8, 12, 1, 4)
