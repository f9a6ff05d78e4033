"""Replay: an engine's EPLB loop run over a routing trace, each plan scored on the traffic it served."""

from __future__ import annotations

import collections
import dataclasses
import hashlib

import streamlit as st

from ui.router import require_router

require_router()

st.title("Replay: EPLB settings on a trace")
starting = st.empty()
with starting.container(), st.spinner("Loading the planner…"):
    import torch

    from packviz.data.samples import DEFAULT_TRACE_SAMPLE
    from packviz.data.traces import SINGULAR, LoadSeries
    from packviz.eplb.cluster import POLICIES, Cluster
    from packviz.eplb.moves import DEEPSEEK_V3_EXPERT_BYTES, INTER_NODE_GBPS, INTRA_NODE_GBPS
    from packviz.eplb.replay import TRIGGERS, ReplaySettings, engine_flags, recommend, replay
    from packviz.eplb.replay_view import (
        DEFAULT_INTERVALS,
        DEFAULT_PLANNERS,
        DEFAULT_TRIGGERS,
        ReplayComparison,
        SweepJob,
        baseline_settings,
        default_grid,
        last_plan_files,
        no_eplb_balancedness,
        plans_npy,
        rewindow,
        summary_json,
        sweep_csv,
        sweep_rows,
    )
    from packviz.text import escape_markdown
    from packviz.viz.replay import served_figure, sweep_figure
    from packviz.workers import ready_pool
    from ui import replay_view as view
starting.empty()

PLANNER_CHOICES = ("auto", "last", "mean:8", "ema:2", "mean_sd:8:0.674", "robust:4")
INTERVAL_CHOICES = (1, 2, 4, 8, 16)
TRIGGER_WORDS = {"interval": "every interval", "utilization": "SGLang's utilisation threshold",
                 "drop": "FlashLB's relative drop"}
PHASE_WORDS = {"prefill": "prefill", "decode": "decode", None: "mixed / untagged"}
POLICY_WORDS = {"auto": "auto (DeepSeek's rule)", "hierarchical": "hierarchical", "global": "global"}

for problem in view.restore_view():
    st.warning(f"Shared link: {problem}.")
state = st.session_state
# Widgets a section does not draw lose their values; held here, every run, they keep them (and the URL's).
KEPT = {"replay_source": "Sample", "replay_gen_phase": "prefill", "replay_gen_windows": 48, "replay_gen_seed": 0,
        "replay_window": 1, "replay_planner": "auto", "replay_interval": 1, "replay_trigger": "interval",
        "replay_threshold": 0.95, "replay_drop_ratio": 0.9, "replay_max_moves": None, "replay_chunk": None,
        "replay_window_s": 60.0, "replay_section": view.SECTIONS[0],
        "replay_sweep_planners": list(DEFAULT_PLANNERS), "replay_sweep_intervals": list(DEFAULT_INTERVALS),
        "replay_sweep_triggers": list(DEFAULT_TRIGGERS)}
for key, value in KEPT.items():
    state[key] = state.get(key, value)

# The trace ------------------------------------------------------------------------------------------------
st.sidebar.header("Trace")
source = st.sidebar.radio("Trace from", view.SOURCES, key="replay_source", horizontal=True)
unit = "windows"
try:
    if source == "Sample":
        st.sidebar.caption(escape_markdown(DEFAULT_TRACE_SAMPLE))
        window = int(st.sidebar.number_input("Window (the sample's windows summed)", 1, 64, key="replay_window"))
        candidates, trace_key = view.sample_trace(window), ("sample", window)
    elif source == "Generator":
        cols = st.sidebar.columns(3)
        phase = cols[0].selectbox("Phase", view.PHASES, key="replay_gen_phase")
        count = int(cols[1].number_input("Windows", 2, 2000, key="replay_gen_windows"))
        seed = int(cols[2].number_input("Seed", 0, 2**31 - 1, key="replay_gen_seed"))
        window = int(st.sidebar.number_input("Window (generated windows summed)", 1, 64, key="replay_window"))
        series = view.generated_trace(count, phase, seed)
        candidates = [dataclasses.replace(series, loads=rewindow(series.loads, window), window=window)]
        trace_key = ("generator", count, phase, seed, window)
    else:
        upload = st.sidebar.file_uploader(
            "A routing trace", key="replay_upload",
            help="SGLang's expert-distribution recorder (per_pass, per_token, stat), SGLang's routed-experts "
                 "responses, a token-level routing log (CSV / TSV / JSONL / NPY) or a [windows, layers, experts] "
                 "array (.npy / .pt / .json)")
        if upload is None:
            stored = state.get("replay_uploaded")
            if stored is None:
                st.info("Upload a trace in the sidebar, or pick the sample or the generator.")
                st.stop()
        else:
            data = upload.getvalue()
            stored = (hashlib.sha256(data).hexdigest(), data, upload.name)
        digest, data, name = stored
        first = view.uploaded_trace(digest, data, name, None, None)
        units = ("windows",) if first[0].unit == "windows" else ("forward passes", "tokens")
        unit = st.sidebar.radio("Window unit", units, key="replay_unit", horizontal=True) \
            if len(units) > 1 else units[0]
        default = first[0].window if unit == first[0].unit else 4096
        if state.get("replay_upload_unit") != (digest, unit):
            state.replay_upload_window = default
            state.replay_upload_unit = (digest, unit)
        window = int(st.sidebar.number_input(f"Window ({unit})", 1, 1 << 24, key="replay_upload_window"))
        candidates = view.uploaded_trace(digest, data, name, window, unit)
        trace_key = ("upload", digest, window, unit)
        state.replay_uploaded = stored
except ValueError as error:  # TraceError and the generator's refusals: one sentence, the last trace stays
    kept = state.get("replay_trace")
    st.error(escape_markdown(str(error)) + (" The previous trace stays." if kept else ""))
    if kept is None:
        st.stop()
    candidates, trace_key = kept
else:
    state.replay_trace = (candidates, trace_key)

if len(candidates) > 1:
    phases = [PHASE_WORDS[s.phase] for s in candidates]
    chosen_phase = st.sidebar.radio("Phase", phases, key="replay_phase", horizontal=True,
                                    help="prefill and decode are planned apart (disaggregated serving runs them "
                                         "on separate clusters)")
    series: LoadSeries = candidates[phases.index(chosen_phase)]
else:
    series = candidates[0]
trace = series.loads.to(torch.float64)
num_windows, num_layers, num_logical = trace.shape
num_moe = int(series.moe_layers.sum())
if num_windows < 2:
    st.error(f"This trace has {num_windows} window(s) of {series.window:,} {series.unit}; a plan is scored on the "
             "window after the one it is made from, so a replay needs at least 2: a smaller window makes more.")
    st.stop()
digest = hashlib.sha256(trace.numpy().tobytes()).hexdigest() + str(tuple(trace.shape))

# The cluster ----------------------------------------------------------------------------------------------
if state.get("replay_experts") != num_logical:
    first_visit = "replay_experts" not in state
    gpus = 8 if num_logical % 8 == 0 else 1
    defaults = {"replay_slots": num_logical + gpus, "replay_gpus": gpus, "replay_groups": 0, "replay_nodes": 1,
                "replay_policy": "global"}
    for key, value in defaults.items():
        if not (first_visit and key in state):
            state[key] = value
    state.replay_experts = num_logical
st.sidebar.header("Cluster")
slots = int(st.sidebar.number_input("Slots per layer (experts + redundant)", 1, 1 << 16, key="replay_slots",
                                    help=f"{num_logical} experts in this trace"))
gpus = int(st.sidebar.number_input("GPUs in all (EP ranks)", 1, 1 << 16, key="replay_gpus"))
groups = int(st.sidebar.number_input("Expert groups (0: none)", 0, 1 << 16, key="replay_groups"))
nodes = int(st.sidebar.number_input("Nodes", 1, 4096, key="replay_nodes"))
policy = st.sidebar.radio("Policy", POLICIES, key="replay_policy", format_func=POLICY_WORDS.get)
with st.sidebar.expander("Time and moving weights"):
    window_s = float(st.number_input("Seconds a window lasts", 0.001, 1e7, key="replay_window_s",
                                     help="for GB moved an hour"))
    passes_known = series.unit == "forward passes"
    window_passes = series.window if passes_known else int(st.number_input(
        "Forward passes a window", 1, 1 << 30, 1000, key="replay_window_passes",
        help="for the engines' flags (re-plan every so many forward passes)"))
    expert_mb = st.number_input("One expert's weights (MB)", 0.001, 1e6, DEEPSEEK_V3_EXPERT_BYTES / 1e6,
                                key="replay_expert_mb", help="default: DeepSeek-V3's expert in FP8")
    intra = st.number_input("Intra-node GB/s per GPU", 0.001, 1e5, INTRA_NODE_GBPS, key="replay_intra")
    inter = st.number_input("Inter-node GB/s per GPU", 0.001, 1e5, INTER_NODE_GBPS, key="replay_inter")

section = st.radio("View", view.SECTIONS, horizontal=True, key="replay_section", label_visibility="collapsed")

# One replay's controls: the sweep runs over the same setting, with the grid's planners, intervals, triggers
controls = st.container()
if section == "One replay":
    cols = controls.columns(4)
    planners = list(PLANNER_CHOICES) + ([state.replay_planner] if state.replay_planner not in PLANNER_CHOICES
                                        else [])
    planner = cols[0].selectbox("Planner", planners, key="replay_planner", accept_new_options=True,
                                help="auto picks by backtest on the windows seen; last plans on the last window "
                                     "(what engines do); or type mean:K, ema:HALF_LIFE, mean_sd:K:Z, robust:K")
    interval = int(cols[1].number_input("Re-plan every (windows)", 1, 1 << 20, key="replay_interval"))
    trigger = cols[2].selectbox("Trigger", TRIGGERS, key="replay_trigger", format_func=TRIGGER_WORDS.get)
    if trigger == "utilization":
        cols[3].number_input("Re-plan when balancedness <=", 0.0, 1.0, step=0.01, key="replay_threshold",
                             help="SGLang's eplb_min_rebalancing_utilization_threshold")
    elif trigger == "drop":
        cols[3].number_input("Re-plan below x the first window's", 0.0, 1.0, step=0.01, key="replay_drop_ratio",
                             help="FlashLB's relative drop: the balancedness seen against its value in the "
                                  "first window after the last plan")
    cols = controls.columns(4)
    cols[0].number_input("Move budget (replicas a layer, empty: none)", 0, 1 << 16, key="replay_max_moves")
    cols[1].number_input("Layers per chunk (empty: all at once)", 1, 1 << 16, key="replay_chunk")
expert_bytes = round(expert_mb * 1e6)
cluster = Cluster(slots, groups or None, nodes, gpus, policy)
settings = ReplaySettings(
    cluster, planner=str(state.replay_planner).strip(), interval=int(state.replay_interval),
    trigger=state.replay_trigger, utilization_threshold=float(state.replay_threshold),
    drop_ratio=float(state.replay_drop_ratio),
    max_moves=None if state.replay_max_moves is None else int(state.replay_max_moves),
    layers_per_chunk=None if state.replay_chunk is None else int(state.replay_chunk),
    expert_bytes=expert_bytes, intra_gbps=intra, inter_gbps=inter)
view.publish_view()

dense = num_layers - num_moe
if series.unit == "windows":
    size_words = "" if series.window == 1 else f" (each {series.window} of the trace's)"
else:
    size_words = f" of {series.window:,} {SINGULAR[series.unit] if series.window == 1 else series.unit}"
st.caption(escape_markdown(
    f"{series.source.split(':')[0]}: {num_windows} windows{size_words}"
    + (f", {PHASE_WORDS[series.phase]}" if series.phase else "")
    + f"; {num_moe} MoE layers of {num_layers}"
    + (f" ({dense} dense, all zero, left out of every mean)" if dense else "")
    + f", {num_logical} experts each."))

problem = settings.problem(num_logical)
last = state.get("replay_last")
if problem:
    kept = last is not None and last[0] == digest
    st.error(escape_markdown(problem) + (" The last replay that worked stays below." if kept else ""))
    if not kept:
        st.stop()
    settings = last[1]
else:
    state.replay_last = (digest, settings)
cluster = settings.cluster


def describe(result_settings: ReplaySettings) -> str:
    return escape_markdown(result_settings.label())


if section == "One replay":
    comparison = view.replayed(digest, trace, settings)
    result, baseline = comparison.result, comparison.baseline
    replans = max(result.replans - 1, 0)
    summary = result.summary(window_s)
    cols = st.columns(4)
    cols[0].metric("Served balancedness", f"{result.mean_balancedness:.4f}",
                   f"{result.mean_balancedness - baseline.mean_balancedness:+.4f} vs last window",
                   help="mean over windows 1.. of each window's balancedness (mean GPU load / busiest GPU's, the "
                        "mean over MoE layers) under the plan in force in it")
    cols[1].metric("Last-window plan (engines)", f"{baseline.mean_balancedness:.4f}")
    cols[2].metric("No EPLB", "n/a" if comparison.no_eplb is None else f"{float(comparison.no_eplb.mean()):.4f}",
                   help="expert e on GPU e // (experts / GPUs), no replicas")
    cols[3].metric("GB moved an hour", f"{result.gb_per_hour(window_s):,.1f}")
    st.plotly_chart(served_figure(comparison), width="stretch", key="replay_served")
    picks = collections.Counter(result.chosen).most_common(3)
    st.write(
        f"{describe(settings)}: served {result.mean_balancedness:.4f} over windows 1-{num_windows - 1} where "
        f"planning on the last window alone, as the engines do, served {baseline.mean_balancedness:.4f}"
        + ("" if comparison.no_eplb is None else f" and no EPLB {float(comparison.no_eplb.mean()):.4f}")
        + f". {result.replans} plans; each re-plan after the first moved {result.moved_fraction:.1%} of the "
        f"{num_layers * cluster.num_replicas:,} slots on average (the last-window plan "
        f"{baseline.moved_fraction:.1%}), {summary['gb_moved'] / max(replans, 1):,.2f} GB and about "
        f"{summary['mean_stall_s_per_replan']:.3f} s of transfer a re-plan (at most {summary['max_stall_s']:.3f} s)."
        + (" The auto planner chose " + ", ".join(f"{escape_markdown(name)} {n} times" for name, n in picks) + "."
           if picks else ""))

elif section == "Sweep":
    cols = st.columns(3)
    planner_options = list(dict.fromkeys([*PLANNER_CHOICES, *state.replay_sweep_planners]))
    grid_planners = cols[0].multiselect("Planners", planner_options, key="replay_sweep_planners",
                                        accept_new_options=True)
    interval_options = sorted({*INTERVAL_CHOICES, *state.replay_sweep_intervals})
    grid_intervals = cols[1].multiselect("Re-plan intervals (windows)", interval_options,
                                         key="replay_sweep_intervals")
    grid_triggers = cols[2].multiselect("Triggers", TRIGGERS, key="replay_sweep_triggers",
                                        format_func=TRIGGER_WORDS.get)
    grid = default_grid(grid_planners, grid_intervals, grid_triggers)
    size = len(grid_planners) * len(grid_intervals) * len(grid_triggers)
    job: SweepJob | None = state.get("replay_job")
    running = job is not None and job.running
    run_cols = st.columns([1, 3])
    start = run_cols[0].button(f"Run the sweep ({size} replays)", disabled=running or size == 0,
                               key="replay_sweep_run", type="primary")
    run_cols[1].caption("Each setting of the grid replays the trace with the cluster, move budget and chunks of "
                        "One replay; the replays run on the worker processes, and the page stays usable meanwhile.")
    if start:
        problems = [p for p in (ReplaySettings(cluster, planner=name).problem(num_logical) for name in grid_planners)
                    if p]
        if problems:
            st.error(escape_markdown(problems[0]))
        else:
            job = SweepJob(trace, settings, grid, ready_pool())
            state.replay_job, state.replay_job_trace = job, (digest, num_logical)
            running = True

    def sweep_progress() -> None:
        current: SweepJob | None = state.get("replay_job")
        if current is None:
            return
        if current.running:
            cols = st.columns([4, 1])
            cols[0].progress(len(current.results) / max(current.total, 1),
                             text=f"{len(current.results)} of {current.total} replays done")
            cols[1].button("Stop", key="replay_sweep_stop", on_click=current.stop,
                           help="ends the sweep after the replays under way; what finished stays")
        elif state.get("replay_job_drawn") is not current:
            state.replay_job_drawn = current
            st.rerun()  # the whole page: the finished sweep's chart and table

    st.fragment(run_every=1.0 if running else None)(sweep_progress)()
    if job is not None and not job.running:
        state.replay_job_drawn = job
    if job is not None:
        if job.error:
            st.error(escape_markdown(job.error))
        results = list(job.results)
        if results:
            if job.stopped and len(results) < job.total:
                st.warning(f"Stopped: {len(results)} of {job.total} replays finished; below are those.")
            if state.get("replay_job_trace", (None,))[0] != digest:
                st.caption("This sweep ran on an earlier trace; run it again for the one in the sidebar.")
            chosen = recommend(results, window_s)
            engines = [r for r in results if r.settings.planner == "last"]
            reference = max(engines, key=lambda r: r.mean_balancedness) if engines else None
            flags = engine_flags(chosen.settings, window_passes, num_logical)
            st.success(
                f"Recommended: {describe(chosen.settings)}. It serves {chosen.mean_balancedness:.4f} moving "
                f"{chosen.gb_per_hour(window_s):,.1f} GB an hour ({chosen.moved_fraction:.1%} of the slots a "
                "re-plan)"
                + (f"; the best last-window setting swept serves {reference.mean_balancedness:.4f} moving "
                   f"{reference.gb_per_hour(window_s):,.1f} GB an hour." if reference else ".")
                + " The best served balancedness on the Pareto front, the fewest GB on a near tie.")
            st.plotly_chart(sweep_figure(results, window_s), width="stretch", key="replay_sweep_chart")
            flag_cols = st.columns(3)
            flag_cols[0].caption("SGLang server arguments")
            flag_cols[0].code(flags.sglang_command, language="bash", wrap_lines=True)
            flag_cols[1].caption("vLLM")
            flag_cols[1].code(flags.vllm_command, language="bash", wrap_lines=True)
            flag_cols[2].caption("TensorRT-LLM (YAML)")
            flag_cols[2].code(flags.trtllm_yaml, language="yaml")
            for note in flags.notes:
                st.caption(escape_markdown(note))
            rows = sweep_rows(results, window_s)
            st.dataframe(rows, hide_index=True, width="stretch", key="replay_sweep_table", column_config={
                "served_balancedness": st.column_config.NumberColumn("served balancedness", format="%.4f"),
                "gb_per_hour": st.column_config.NumberColumn("GB an hour", format="%.2f"),
                "moved_fraction_per_replan": st.column_config.NumberColumn("slots moved a re-plan",
                                                                           format="percent"),
                "mean_stall_s_per_replan": st.column_config.NumberColumn("stall a re-plan (s)", format="%.3f")})
            st.download_button("Sweep table CSV", sweep_csv(rows), "replay_sweep.csv", "text/csv",
                               key="replay_sweep_csv")

else:
    job = state.get("replay_job")
    results = list(job.results) if job is not None and state.get("replay_job_trace", (None,))[0] == digest else []
    if results:
        chosen = recommend(results, window_s)
        base = baseline_settings(chosen.settings)
        baseline = next((r for r in results if r.settings == base), None) or replay(trace, base)
        comparison = ReplayComparison(chosen, baseline, no_eplb_balancedness(trace, chosen.settings.cluster.num_gpus))
        st.write(f"The sweep's recommended setting: {describe(chosen.settings)}.")
    else:
        comparison = view.replayed(digest, trace, settings)
        st.write(f"No sweep has finished on this trace: the files hold One replay's setting, "
                 f"{describe(settings)}.")
    trace_info = {"source": series.source, "windows": num_windows, "layers": num_layers, "experts": num_logical,
                  "moe_layers": num_moe, "window": series.window, "unit": series.unit, "phase": series.phase}
    files = last_plan_files(comparison.result, series.moe_layers)
    shown = comparison.result.settings.cluster
    stem = f"replay_{shown.num_replicas}slots_{shown.num_gpus}gpus"
    cols = st.columns(3)
    cols[0].download_button("Plans .npy", plans_npy(comparison.result), "plans.npy", "application/octet-stream",
                            key="replay_plans", help="int64 [windows - 1, layers, slots]: row i in force in window i+1")
    cols[1].download_button("Summary JSON", summary_json(comparison, window_s, window_passes, trace_info, num_logical),
                            "summary.json", "application/json", key="replay_summary")
    if results:
        cols[2].download_button("Sweep table CSV", sweep_csv(sweep_rows(results, window_s)), "replay_sweep.csv",
                                "text/csv", key="replay_export_sweep")
    st.caption("The last plan in force, as the engines load it:")
    cols = st.columns(3)
    cols[0].download_button("SGLang JSON", files["sglang"], f"expert_location_{stem}.json", "application/json",
                            key="replay_sglang", help="--init-expert-location: physical_to_logical_map")
    cols[1].download_button("vLLM JSON", files["vllm"], f"vllm_map_{stem}.json", "application/json",
                            key="replay_vllm")
    cols[2].download_button("TensorRT-LLM YAML", files["trtllm"], f"eplb_config_{stem}.yaml", "application/yaml",
                            key="replay_trtllm", help="initial_global_assignments")
