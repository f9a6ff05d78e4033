"""Compare packers: every preset on the loaded data, against the lower bound."""

from __future__ import annotations

import streamlit as st

from packviz import PRESETS, optimal
from packviz.compare import (
    compare_presets,
    layer_steps,
    merge_results,
    optimum_rows,
    pareto_front,
    recommendation,
    solve_layer,
    table_rows,
)
from packviz.cost import estimate_seconds
from packviz.text import escape_markdown
from packviz.viz.figures import comparison_figure
from packviz.workers import pack_in_worker
from ui.caches import run_pack, start_packing_workers
from ui.explore_view import refuse_what_does_not_fit
from ui.router import require_router
from ui.sidebars import data_sidebar, packer_sidebar

require_router()

SOLVER_MAX_VALUES = 1024
# Quick presets first, so the first rows show within a second or two. The seed's
# 2048-restart preset runs only when asked for, and so does any preset that would
# take the estimated total past AUTO_BUDGET_S (packviz.cost, calibrated on this
# machine, is within about 2x of the runs).
ALWAYS_ON_REQUEST = {"restarts-1swap": "the seed before, 2048 restarts"}
AUTO_BUDGET_S = 15.0


@st.cache_data(show_spinner=False, max_entries=256)
def pack_layers(digest: str, _weight, config, num_packs: int, start: int, stop: int):
    """One step of a long run: layers start..stop-1, numbered as in the whole."""
    del digest
    return pack_in_worker(_weight[start:stop], num_packs, config, seed=config.seed, layer_ids=range(start, stop))


@st.cache_data(show_spinner=False, max_entries=1024)
def solve_cached(digest: str, _weight, num_packs: int, layer: int, limit: int):
    del digest
    return solve_layer(_weight, num_packs, layer, limit)


def _stop(key: tuple) -> None:
    st.session_state.compare_stopped = key


def _resume() -> None:
    st.session_state.compare_stopped = None


def _stop_solving() -> None:
    st.session_state.solving = None


# The choices of a run's worth of waiting, a tenth of a second to five minutes.
WAITS_S = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 60.0, 300.0)


def show(table, chart, verdict, results: dict, done: int, wait_s: float) -> None:
    rows = compare_presets(results)
    verdict.success(recommendation(rows, wait_s))
    table.dataframe(table_rows(rows), width="stretch", hide_index=True, key=f"compare_table_{done}",
                    column_config={"mean_gap_pct": st.column_config.NumberColumn("mean gap to LB", format="%.4f%%"),
                                   "max_gap_pct": st.column_config.NumberColumn("max gap to LB", format="%.4f%%"),
                                   "mean_max_over_mean": st.column_config.NumberColumn("mean max/mean",
                                                                                       format="%.6f"),
                                   "seconds": st.column_config.NumberColumn("seconds", format="%.3f"),
                                   "time_vs_baseline": st.column_config.NumberColumn("time / eplb",
                                                                                     format="%.2fx"),
                                   "pareto": st.column_config.CheckboxColumn(
                                       "Pareto front", help="No other packer is both faster and nearer the "
                                                            "lower bound")})
    chart.plotly_chart(comparison_figure(rows, pareto_front(rows)), width="stretch", key=f"comparison_{done}")


st.title("Compare packers")
data = data_sidebar()
choice = packer_sidebar(data.weight.shape[1])
if choice is None:
    st.warning(escape_markdown(f"Not compared: {st.session_state.get('packer_problem') or 'see the sidebar'}."))
    st.stop()
_, config, packs = choice
refuse_what_does_not_fit(data, config, packs)
layers, items = data.weight.shape
st.write(f"Every preset on the loaded data ({layers} x {items}), {packs} packs, "
         f"seed {config.seed}. Gap = max pack load / lower bound - 1; the lower bound is the best of "
         "L0 (mean), L1 and the L_t family (see How it works).")
# The plan is made once per data and pack count: the estimates learn from every run,
# and a rerun must not change which presets are shown (and so run them all again).
plans_made = st.session_state.setdefault("compare_plans", {})
if (data.digest, packs) not in plans_made:
    estimates = {name: estimate_seconds(layers, items, packs, preset.config) for name, preset in PRESETS.items()}
    order = sorted(PRESETS, key=lambda name: estimates[name])
    slow, budget = [], AUTO_BUDGET_S
    for name in order:
        if name not in ALWAYS_ON_REQUEST:
            budget -= estimates[name]
        if name in ALWAYS_ON_REQUEST or budget < 0:
            slow.append(name)
    plans_made[(data.digest, packs)] = (estimates, order, slow)
estimates, order, slow = plans_made[(data.digest, packs)]
with_slow = st.toggle("Also run the slow presets: " + "; ".join(
    f"{name} ({ALWAYS_ON_REQUEST[name] + ', ' if name in ALWAYS_ON_REQUEST else ''}"
    f"roughly {estimates[name]:,.0f} s)" for name in slow), key="compare_slow")
names = [name for name in order if with_slow or name not in slow]
configs = {name: PRESETS[name].config.replace(seed=config.seed) for name in names}
# A long preset runs a few layers at a time: the bar moves, and Stop (here or
# Streamlit's own) takes effect between steps, keeping the presets already done.
plans = {name: layer_steps(layers, items, packs, configs[name]) for name in names}
run_key = (data.digest, packs, config.seed, tuple(names))
stopped = st.session_state.get("compare_stopped") == run_key
if st.session_state.get("compare_done", (None,))[0] != run_key:
    st.session_state.compare_done = (run_key, {})
kept = st.session_state.compare_done[1]

wait_s = st.select_slider("The time you are willing to wait for a run", WAITS_S, value=1.0, key="compare_wait",
                          format_func=lambda s: f"{s:g} s")
progress, controls = st.empty(), st.empty()
verdict, table, chart = st.empty(), st.empty(), st.empty()
if not stopped and any(len(plan) > 1 for name, plan in plans.items() if name not in kept):
    controls.button("Stop comparing", key="compare_stop", on_click=_stop, args=(run_key,),
                    help="Stop after the current step; the presets done so far stay on screen.")
total = sum(len(plan) for plan in plans.values())
finished = 0
results = {}
for name in names:
    plan = plans[name]
    if name not in kept:
        if stopped:
            break
        parts = []
        for step in plan:
            where = f", layers {step.start + 1}-{step.stop} of {layers}" if len(plan) > 1 else ""
            progress.progress(finished / total, text=f"Packing with {name}{where} ({len(results)} of "
                                                     f"{len(names)} presets done)")
            if len(plan) == 1:  # one step: the run Explore caches too
                parts.append(run_pack(data.digest, data.weight, configs[name], packs))
            else:
                parts.append(pack_layers(data.digest, data.weight, configs[name], packs, step.start, step.stop))
            finished += 1
        kept[name] = merge_results(parts)
    else:
        finished += len(plan)
    results[name] = kept[name]
    show(table, chart, verdict, results, len(results), wait_s)
progress.empty()
if len(results) < len(names):
    with controls.container():
        st.info(f"Stopped: {len(results)} of {len(names)} presets done "
                f"({', '.join(name for name in names if name not in results)} not run).")
        st.button("Run the rest", key="compare_resume", on_click=_resume)
else:
    controls.empty()

if optimal.available():
    st.subheader("Distance to the true optimum")
    if layers * items > SOLVER_MAX_VALUES:
        st.caption(f"The exact solver (OR-Tools CP-SAT) is offered for small data: at most {SOLVER_MAX_VALUES} "
                   f"loads; this data has {layers * items}. Load the teaching or README sample to try it.")
    else:
        limit = st.slider("Time limit per layer (s)", 1, 60, 10, key="solver_limit")
        solve_key = (data.digest, packs, limit)
        if st.button("Prove the optimum with CP-SAT", key="solve"):
            st.session_state.solving = solve_key
            st.session_state.optimum = (data.digest, packs, [])
        if st.session_state.get("solving") == solve_key:
            # layer by layer, each up to the time limit: the bar says where it is, Stop keeps what is proved
            bar, stop = st.empty(), st.empty()
            stop.button("Stop solving", key="solve_stop", on_click=_stop_solving,
                        help="Stop after the current layer; the layers solved so far stay on screen.")
            solved = []
            for layer in range(layers):
                bar.progress(layer / layers, text=f"Solving layer {layer + 1} of {layers} (up to {limit} s each)")
                solved.append(solve_cached(data.digest, data.weight, packs, layer, limit))
                st.session_state.optimum = (data.digest, packs, list(solved))
            st.session_state.solving = None
            bar.empty()
            stop.empty()
        found = st.session_state.get("optimum")
        if found and found[:2] == (data.digest, packs) and found[2]:
            solved = found[2]
            if len(solved) < layers:
                st.caption(f"Stopped: {len(solved)} of {layers} layers solved.")
            st.dataframe([{"layer": o.layer, "status": o.status, "optimum max load": o.max_load,
                           "proved bound": o.bound, "seconds": round(o.seconds, 2)} for o in solved],
                         hide_index=True, width="stretch")
            st.dataframe(optimum_rows(results, solved), hide_index=True, width="stretch")

# The workers that pack for every session start once this first run is drawn (packviz.workers).
start_packing_workers()
