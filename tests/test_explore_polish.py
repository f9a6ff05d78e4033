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


def _lognormal_on_its_bounds():
    # 2 items a pack: every layer's greedy is on its bound, and the float sums land a hair either side
    from packviz.data.generators import generate
    from packviz.data.loaders import LoadedMatrix
    from packviz.data.samples import make_dataset

    weight = generate("lognormal", 8, 64, seed=0, integer=False)
    return make_dataset(LoadedMatrix(weight, "8 x 64 lognormal", "upload"), default_packs=32)


def test_a_layer_on_its_bound_shows_a_gap_of_zero_not_float_noise():
    from packviz import pack
    from packviz.metrics import layer_metrics
    from packviz.viz.figures import overview_figure

    data = _lognormal_on_its_bounds()
    result = pack(data.weight, 32, "fast")
    metrics = layer_metrics(result.pack_loads, result.weight)
    ratio = result.pack_loads.amax(dim=1) / metrics.lower_bound - 1
    assert bool((ratio < 0).any()) and bool((ratio != 0).any())  # the noise this data carries
    assert bool((metrics.gap_to_lower_bound == 0).all())
    gap_axis = overview_figure(metrics).layout.yaxis
    assert list(gap_axis.range) == [0, 1] and gap_axis.exponentformat == "none"

    at = fresh()
    at.session_state["dataset"] = data
    at.session_state["packs"] = 32
    at.run()
    assert not at.exception
    assert metric(at, "Mean gap to LB") == "0.0000%" and metric(at, "Max gap to LB") == "0.0000%"


def test_the_per_pack_csv_writes_sums_without_float_noise():
    import csv
    import io

    import torch

    from packviz import pack
    from packviz.io.export import pack_summary_csv

    weight = torch.tensor([[48.966, 255.756, 231.495, 83.97]], dtype=torch.float64)
    result = pack(weight, 2, "eplb")
    assert "315.46500000000003" in repr(result.pack_loads.tolist())  # the float sum
    rows = list(csv.DictReader(io.StringIO(pack_summary_csv(result))))
    loads = sorted(row[next(k for k in row if "load" in k and "share" not in k)] for row in rows)
    assert loads == ["304.722", "315.465"], loads


def test_the_narration_prints_a_load_as_the_chart_beside_it_does():
    import torch

    from packviz import pack
    from packviz.metrics import lower_bound
    from packviz.teach.narration import explore
    from packviz.trace.timeline import build_frames
    from packviz.viz.figures import lesson_figure

    weight = torch.tensor([[4046.25, 4046.25, 3000.5, 1200.0, 900.0, 700.0]], dtype=torch.float64)
    trace = pack(weight, 2, "fast", trace_layers=[0]).traces[0]
    frames = build_frames(trace)
    last = len(frames) - 1
    caption = explore(trace, frames, last)
    figure = lesson_figure(trace, frames, last, float(lower_bound(weight, 2)[0]))
    totals = [text.removeprefix("<b>").removesuffix("</b>") for trace_ in figure.data
              if trace_.type == "scatter" and trace_.mode == "text" for text in trace_.text]
    top = max(totals, key=lambda t: float(t.replace(",", "")))
    assert f"max pack load {top}" in caption, (caption, totals)


def test_segment_labels_are_readable_or_left_out():
    from packviz import pack
    from packviz.data.samples import DEFAULT_SAMPLE, load_sample
    from packviz.metrics import lower_bound
    from packviz.trace.timeline import build_frames
    from packviz.viz.figures import SEGMENT_MIN_FONT, lesson_figure

    weight = load_sample(DEFAULT_SAMPLE).weight[:1]
    trace = pack(weight, 32, "fast", trace_layers=[0]).traces[0]
    frames = build_frames(trace)
    figure = lesson_figure(trace, frames, len(frames) - 1, float(lower_bound(weight, 32)[0]))
    # Plotly shrinks an inside label to fit its segment: never below a size one can read
    assert figure.layout.uniformtext.mode == "hide" and figure.layout.uniformtext.minsize >= SEGMENT_MIN_FONT >= 12
    segments = [text for bar in figure.data if bar.type == "bar" and bar.textposition == "inside"
                for text in bar.text if text]
    # 32 bars across: the item number alone (3 characters at most), its load on hover
    assert segments and all(len(text) <= 3 and text.isdigit() for text in segments)
    assert all(bar.textfont.size >= SEGMENT_MIN_FONT for bar in figure.data if bar.type == "bar" and bar.text)


def test_a_swap_among_many_packs_names_its_moved_items_where_segment_labels_are_left_out():
    from packviz import pack
    from packviz.data.samples import DEFAULT_SAMPLE, load_sample
    from packviz.metrics import lower_bound
    from packviz.trace.events import Swapped
    from packviz.trace.timeline import build_frames
    from packviz.viz.figures import SEGMENT_MIN_FONT, lesson_figure

    weight = load_sample(DEFAULT_SAMPLE).weight[:1]
    trace = pack(weight, 32, "fast", trace_layers=[0]).traces[0]
    frames = build_frames(trace)
    index = next(i for i, f in enumerate(frames) if isinstance(f.event, Swapped))
    swap = frames[index].event
    figure = lesson_figure(trace, frames, index, float(lower_bound(weight, 32)[0]))
    named = [a for a in figure.layout.annotations if a.showarrow]
    assert sorted(a.text for a in named) == sorted(str(i) for i in (*swap.items_from_a, *swap.items_from_b))
    assert all(a.font.size >= SEGMENT_MIN_FONT for a in named)
    # the ticks carry the pack numbers alone: the axis says no more
    assert figure.layout.xaxis3.title.text == "pack"
