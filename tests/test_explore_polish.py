"""What a researcher tripped on in Explore: bad knobs keep the last result and say
why, idle knobs say why they are greyed out, a notice of a slow run goes the moment
a change makes the run quick, and no float noise reaches the screen."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from packviz import cost
from packviz.config import PRESETS, idle_knobs, knob_problem

ROOT = Path(__file__).resolve().parent.parent


def fresh() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def plain(text: str) -> str:
    return text.replace("\\", "")  # the page escapes Markdown


def test_noise_min_above_max_says_so_and_keeps_the_last_result():
    at = fresh().run()
    before = metric(at, "Mean gap to LB")
    at.number_input(key="num_restarts").set_value(16).run()
    packed = metric(at, "Mean gap to LB")
    at.number_input(key="noise_min").set_value(0.9).run()
    assert not at.exception
    warnings = [plain(w.value) for w in at.warning]
    assert any("noise min 0.9 is above noise max 0.2" in w and "the last result" in w for w in warnings), warnings
    assert not any("pack count" in w for w in warnings)
    assert metric(at, "Mean gap to LB") == packed and at.get("plotly_chart")  # the last result stays
    at.number_input(key="noise_max").set_value(1.0).run()  # fixed: packs again, the notice goes
    assert not at.warning and metric(at, "Mean gap to LB")
    assert before


def test_knob_problem_words():
    assert knob_problem({"noise_min": 0.9, "noise_max": 0.2}).startswith("noise min 0.9 is above noise max 0.2")
    assert knob_problem({"noise_min": 0.1, "noise_max": 0.2}) is None
    assert "num_restarts" in knob_problem({"num_restarts": 0})


def test_idle_knobs_are_the_ones_that_change_nothing():
    fast = {name: getattr(PRESETS["fast"].config, name) for name in ("num_restarts", "one_swap", "two_swap",
                                                                    "max_iterations", "swap_scope")}
    assert idle_knobs(fast) == {"scope_k": "used by the top-k scope only"}
    assert idle_knobs({**fast, "one_swap": False})["two_swap_when_stuck"] == "needs both 1-swap and 2-swap on"
    off = idle_knobs({**fast, "one_swap": False, "two_swap": False})
    assert {"num_refined", "swap_scope", "scope_k", "swap_score"} <= set(off)
    # never the knobs that bring the others back
    assert not {"one_swap", "two_swap", "max_iterations", "num_restarts"} & set(off)
    assert set(idle_knobs({**fast, "num_restarts": 1})) >= {"noise_min", "noise_max"}


def test_an_idle_knob_is_greyed_out_and_says_why():
    at = fresh().run()
    at.selectbox(key="preset").set_value("restarts-2swap").run()
    assert not at.checkbox(key="two_swap_when_stuck").disabled
    at.checkbox(key="one_swap").uncheck().run()
    assert not at.exception
    assert at.checkbox(key="two_swap_when_stuck").disabled
    assert not at.checkbox(key="two_swap").disabled  # the 2-swap itself stays: it is how one gets refinement
    captions = [c.value for c in at.sidebar.caption]
    assert any("2-swaps only where no 1-swap helps: needs both 1-swap and 2-swap on" in c for c in captions), captions


def test_the_slow_notice_goes_as_soon_as_a_change_makes_the_run_quick(monkeypatch):
    monkeypatch.setattr(cost, "MODEL", cost.CostModel())  # the reference model: the same estimates anywhere
    slow = PRESETS["fast"].config.replace(num_restarts=4096)
    monkeypatch.setattr(cost, "SLOW_SECONDS", cost.estimate_seconds(58, 288, 32, slow))
    at = fresh().run()
    at.number_input(key="num_restarts").set_value(8192).run()
    assert any("press Run" in plain(i.value) for i in at.info)
    at.number_input(key="num_restarts").set_value(2).run()
    assert not [i for i in at.info if "press Run" in plain(i.value)]
    assert not [b for b in at.button if b.key == "run_slow"]
    assert metric(at, "Mean gap to LB")
