"""The Compare page under AppTest: long presets run in steps of layers with the
same results as one run; a stop keeps the presets done and offers the rest; the
exact solver goes layer by layer."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from packviz import PRESETS, pack
from packviz.compare import compare_presets, layer_steps
from packviz.data.samples import DEFAULT_SAMPLE, load_sample

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["eplb", "fast", "best", "restarts-2swap"]


def compare_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_presets_run_in_steps_give_the_one_run_rows():
    weight = load_sample(DEFAULT_SAMPLE).weight
    assert len(layer_steps(*weight.shape, 32, PRESETS["restarts-2swap"].config)) > 1  # this one runs in steps
    at = compare_page()
    table = at.dataframe[0].value
    assert sorted(table["packer"]) == sorted(QUICK)
    for name in ("restarts-2swap", "best"):
        expected = compare_presets({name: pack(weight, 32, name, seed=0)})[0]
        row = table.loc[table["packer"] == name].iloc[0]
        assert row["mean_gap_pct"] == expected["mean_gap"] * 100
        assert row["max_gap_pct"] == expected["max_gap"] * 100
        assert row["mean_max_over_mean"] == expected["mean_imbalance"]
    # the run is over: no bar, no Stop left on screen
    assert not at.get("progress")
    assert not [b for b in at.button if b.key in ("compare_stop", "compare_resume")]
    assert not at.info


def test_a_stopped_comparison_keeps_the_presets_done_and_runs_the_rest_on_request():
    at = compare_page()
    key, done = at.session_state["compare_done"]
    order = list(done)
    assert sorted(order) == sorted(QUICK)
    # as when Stop was pressed while the third preset was running
    at.session_state["compare_done"] = (key, {name: done[name] for name in order[:2]})
    at.session_state["compare_stopped"] = key
    at.run()
    assert not at.exception
    assert list(at.dataframe[0].value["packer"]) == order[:2]
    assert "Stopped: 2 of 4 presets done" in at.info[0].value
    assert f"{order[2]}, {order[3]} not run" in at.info[0].value
    at.button(key="compare_resume").click().run()
    assert not at.exception
    assert list(at.dataframe[0].value["packer"]) == order
    assert not at.info


def test_the_exact_solver_goes_layer_by_layer_and_shows_a_partial_answer():
    from packviz.optimal import available

    if not available():
        pytest.skip("ortools is not installed")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.selectbox(key="sample").set_value("DeepSeek EPLB README example (2 x 12)").run()
    at.switch_page("pages/compare.py").run()
    at.button(key="solve").click().run()
    assert not at.exception
    solved = at.dataframe[1].value
    assert list(solved["layer"]) == [0, 1]
    assert list(solved["status"]) == ["optimal", "optimal"]
    assert not [b for b in at.button if b.key == "solve_stop"]
    # what a stop after the first layer leaves: that layer, said to be partial
    digest, packs, layers = at.session_state["optimum"]
    at.session_state["optimum"] = (digest, packs, layers[:1])
    at.run()
    assert list(at.dataframe[1].value["layer"]) == [0]
    assert any("Stopped: 1 of 2 layers solved" in c.value for c in at.caption)
    assert set(at.dataframe[2].value["layers_proved"]) == {1}


def test_presets_estimated_past_the_budget_wait_for_the_toggle(monkeypatch):
    from packviz import cost
    from packviz.cost import estimate_seconds
    from packviz.data.generators import generate
    from packviz.data.loaders import LoadedMatrix
    from packviz.data.samples import make_dataset

    # 10 layers of 1024 items on 32 packs: best's 2-swaps over 32 items a pack, taught by a
    # (pretended) run of 60 s, are estimated far past the budget, the others within it
    model = cost.CostModel()
    model.observe(cost.Measurement(10, 1024, 32, PRESETS["best"].config, 60.0))
    monkeypatch.setattr(cost, "MODEL", model)
    assert estimate_seconds(10, 1024, 32, PRESETS["best"].config) > 30
    assert sum(estimate_seconds(10, 1024, 32, PRESETS[name].config) for name in ("eplb", "fast", "restarts-2swap")) \
        < 15
    data = make_dataset(LoadedMatrix(generate("moe", 10, 1024, seed=0), "10 x 1024 generated", "generated"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.session_state["dataset"] = data
    at.session_state["packs"] = 32
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = list(at.dataframe[0].value["packer"])
    assert sorted(shown) == ["eplb", "fast", "restarts-2swap"]
    # quickest first, as estimated when the page planned the run (each run since has taught the estimate)
    estimates, _, _ = at.session_state["compare_plans"][(data.digest, 32)]
    assert shown == sorted(shown, key=lambda name: estimates[name])
    label = at.toggle(key="compare_slow").label
    assert "best (roughly" in label and "restarts-1swap (the seed before" in label
    assert "restarts-2swap (" not in label


def test_compare_marks_the_pareto_front_and_names_the_pick_for_the_wait():
    from packviz.compare import pareto_front, recommendation

    at = compare_page()
    rows = compare_presets(at.session_state["compare_done"][1])
    table = at.dataframe[0].value
    front = pareto_front(rows)
    assert list(table.loc[table["pareto"], "packer"]) == [row["packer"] for row in rows if row["packer"] in front]
    assert at.success[0].value == recommendation(rows, 1.0)
    figure = at.get("plotly_chart")[0].proto.spec
    assert "Pareto front" in figure
    at.select_slider(key="compare_wait").set_value(300.0).run()
    assert at.success[0].value == recommendation(rows, 300.0)
    nearest = min(rows, key=lambda r: (r["mean_gap"], r["seconds"]))["packer"]
    assert f"pick {nearest}:" in at.success[0].value
