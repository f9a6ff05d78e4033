"""Deploy: the whole EPLB placement for a cluster, its checks, its balance, how it holds up over time, its files."""

from __future__ import annotations

import dataclasses
import os

import streamlit as st

from ui.router import require_router

require_router()

st.title("Deploy: the whole expert placement")
starting = st.empty()
with starting.container(), st.spinner("Loading the planner…"):
    from packviz.config import PRESETS
    from packviz.data.generators import drifting_from
    from packviz.eplb.cluster import POLICIES, Cluster, balance, check_plan, default_cluster, layers_phrase, moe_layers
    from packviz.eplb.models import DEFAULT_MODEL, MODELS, model_for
    from packviz.eplb.moves import INTER_NODE_GBPS, INTRA_NODE_GBPS, MOVE_COLUMNS, moves_between
    from packviz.eplb.over_time import windows
    from packviz.io.deploy import PlanFileError, moves_csv, read_plan
    from packviz.text import count_of, duration, escape_markdown
    from packviz.viz.deploy import balance_comparison_figure, moves_curve_figure, over_time_figure
    from ui import deploy_caches as caches
    from ui.deploy_view import SECTIONS, data_gone_sentence, publish_view, restore_view
    from ui.sidebars import data_sidebar, remember_widget_state
starting.empty()

PLANNERS = ("eplb", *[name for name in PRESETS if name != "eplb"])
DEFAULT_COMPARED = ("eplb", "fast", "best")
# Over time waits this long for its plans within the run that asked; past it, they finish in the background
# (PACKVIZ_OVER_TIME_INLINE_S sets it: a benchmark timing the whole run waits for it all)
OVER_TIME_INLINE_S = float(os.environ.get("PACKVIZ_OVER_TIME_INLINE_S", "3"))
POLICY_WORDS = {"auto": "auto (DeepSeek's rule)", "hierarchical": "hierarchical", "global": "global"}
OTHER_MODEL = "another model (enter its expert size)"

for problem in restore_view():
    st.warning(f"Shared link: {problem}.")
# Deploy replicates the logical experts into its own slot count: the data sidebar's replication is Explore's
data = data_sidebar(replicate=False)
gone = data_gone_sentence()
if gone:
    st.warning(gone)
experts = data.experts if data.experts is not None else data.weight
num_layers, num_logical = experts.shape
matched = model_for(experts)

# A new number of experts brings a cluster that fits it, with the groups of the model the data's shape names
# (none where it names none); any other change keeps the user's cluster, and so does a link's on the first visit.
if st.session_state.get("deploy_experts") != num_logical:
    first_visit = "deploy_experts" not in st.session_state
    start = default_cluster(num_logical, matched.num_groups if matched else None)
    defaults = {"deploy_replicas": start.num_replicas, "deploy_groups": start.num_groups or 0,
                "deploy_nodes": start.num_nodes, "deploy_gpus": start.num_gpus}
    for key, value in defaults.items():
        if not (first_visit and key in st.session_state):
            st.session_state[key] = value
    st.session_state.deploy_experts = num_logical
# New data: its model's expert size, and Placement on a layer with load (a dense layer has nothing to show)
if st.session_state.get("deploy_model_for") != data.digest:
    st.session_state.deploy_model = matched.name if matched else OTHER_MODEL
    has_load = moe_layers(experts)
    shown = st.session_state.get("deploy_layer", 0)
    if bool(has_load.any()) and not (0 <= shown < num_layers and bool(has_load[shown])):
        st.session_state.deploy_layer = int(has_load.nonzero().flatten()[0])
    st.session_state.deploy_model_for = data.digest
remember_widget_state(("deploy_replicas", "deploy_groups", "deploy_nodes", "deploy_gpus", "deploy_model",
                       "deploy_model_for", "deploy_layer"))
st.session_state.setdefault("deploy_policy", "auto")
st.session_state.setdefault("deploy_preset", "fast")

st.sidebar.header("Cluster")
replicas = int(st.sidebar.number_input("Slots per layer (experts + redundant)", 1, 1 << 16, key="deploy_replicas",
                                       help=f"{num_logical} logical experts in this data; each slot beyond them "
                                            "holds a replica of a hot expert"))
groups = int(st.sidebar.number_input("Expert groups (0: none)", 0, 1 << 16, key="deploy_groups"))
nodes = int(st.sidebar.number_input("Nodes", 1, 4096, key="deploy_nodes"))
gpus = int(st.sidebar.number_input("GPUs in all (EP ranks)", 1, 1 << 16, key="deploy_gpus"))
policy = st.sidebar.radio("Policy", POLICIES, key="deploy_policy", format_func=POLICY_WORDS.get,
                          help="hierarchical: expert groups onto nodes, then replicas within each node; global: one "
                               "pool of GPUs; auto: hierarchical when the groups divide among the nodes")
preset = st.sidebar.selectbox("Packer of each stage", PLANNERS, key="deploy_preset",
                              help="eplb is DeepSeek's own greedy, exactly; the others are packviz presets, never "
                                   "worse on any layer's busiest GPU")
with st.sidebar.expander("Moving weights (estimates)"):
    # the name alone: with its shape and size the choice was cut in a 1366 px sidebar; those go below it
    model_name = st.selectbox("Model", [*MODELS, OTHER_MODEL], key="deploy_model",
                              help="one expert's weights: 3 matrices of hidden x MoE intermediate size, at the "
                                   "model's weight size (FP8 1 byte, BF16 2); chosen from the data's shape where it "
                                   "is a listed model's")
    if model_name in MODELS:
        expert_mb = MODELS[model_name].expert_bytes / 1e6
        st.caption(f"{MODELS[model_name].shape_words}. One expert: {expert_mb:,.6g} MB")
    else:
        expert_mb = st.number_input("One expert's weights (MB)", 0.001, 1e6, MODELS[DEFAULT_MODEL].expert_bytes / 1e6,
                                    key="deploy_expert_mb")
    intra = st.number_input("Intra-node GB/s per GPU", 0.001, 1e5, INTRA_NODE_GBPS, key="deploy_intra")
    inter = st.number_input("Inter-node GB/s per GPU", 0.001, 1e5, INTER_NODE_GBPS, key="deploy_inter")
expert_bytes = round(expert_mb * 1e6)
# the layer widget only exists in Placement: a layer beyond this data's is the last one
if st.session_state.get("deploy_layer", 0) >= num_layers:
    st.session_state.deploy_layer = num_layers - 1
publish_view()

cluster = Cluster(replicas, groups or None, nodes, gpus, policy)
problem = cluster.problem(num_logical)
last = st.session_state.get("deploy_last")
if problem:
    kept = last is not None and last[0] == data.digest
    st.error(escape_markdown(problem) + (" The last plan that worked stays below." if kept else ""))
    if not kept:
        st.stop()
    _, cluster, preset = last
else:
    st.session_state.deploy_last = (data.digest, cluster, preset)

phy2log = caches.plan(data.digest, experts, cluster, preset)
score = balance(experts, phy2log, cluster)
checks = check_plan(phy2log, num_logical, cluster)
mode = "hierarchical" if cluster.hierarchical else "global"
moe = score.moe
over = "over the MoE layers" if not bool(moe.all()) else "over layers"

# the data's own description speaks of its slots (Explore packs those); Deploy plans from the logical experts
st.caption(escape_markdown(f"{data.source}: the loads of {num_logical} logical experts in {num_layers} layers, "
                           f"total {float(experts.sum()):,.0f}; Deploy replicates and places them itself"))
st.write(f"{layers_phrase(moe)} x {num_logical} experts into {cluster.num_replicas} slots on "
         f"{count_of(cluster.num_gpus, 'GPU')} ({cluster.slots_per_gpu} each) over "
         f"{count_of(cluster.num_nodes, 'node')}, "
         f"{count_of(cluster.num_groups, 'expert group') if cluster.num_groups else 'no expert groups'}, "
         f"{mode} policy, `{preset}` packing each stage.")
cols = st.columns(4)
cols[0].metric("Balancedness (mean/max)", f"{score.mean_balancedness:.4f}",
               help=f"mean {over} of mean GPU load / busiest GPU load, as SGLang and vLLM report it")
cols[1].metric("Imbalance ((max-mean)/mean)", f"{score.mean_imbalance * 100:.4g}%",
               help=f"mean {over}, as TensorRT-LLM reports it")
cols[2].metric(f"Bound of the {mode} policy", f"{score.mean_bound_over_mean:.4f}x mean",
               help="no plan of this policy has a lighter busiest GPU (hierarchical: groups stay on their node)")
cols[3].metric("Same-GPU duplicate slots", f"{int(checks.duplicates.sum()):,}")

if checks.ok:
    passed = [f"every expert has a slot in each of the {num_layers} layers",
              f"every GPU holds {cluster.slots_per_gpu} slots"]
    if cluster.hierarchical:
        passed.append("every expert group sits on one node")
    st.success("Checks pass: " + "; ".join(passed) + ".")


def show_checks(found, prefix: str = "") -> None:
    """A plan's failed checks as errors; same-GPU duplicates (they waste a slot, break nothing) as a warning."""
    sentences = found.sentences()
    wasted = int(found.duplicates.sum()) > 0
    for index, sentence in enumerate(sentences):
        duplicates = wasted and index == len(sentences) - 1
        (st.warning if found.ok or duplicates else st.error)(prefix + sentence)


def export_buttons(files: dict[str, str], stem: str, key: str, with_loads: bool = True) -> None:
    """The plan's files, one button each (``key`` tells one plan's buttons from another's); ``with_loads``
    adds SGLang's logical_count file, which is the loads, not the plan (SGLang plans on them itself): a
    re-plan's files leave it out, as it would not deploy the re-plan."""
    cols = st.columns(3)
    cols[0].download_button("Placement CSV", files["csv"], f"placement_{stem}.csv", "text/csv",
                            help="layer,node,gpu,slot,expert,replica,load", key=f"{key}_csv")
    cols[1].download_button("SGLang JSON", files["sglang"], f"expert_location_{stem}.json", "application/json",
                            help="--init-expert-location: physical_to_logical_map", key=f"{key}_sglang")
    if with_loads:
        cols[2].download_button("SGLang logical_count JSON", files["logical_count"], "logical_count.json",
                                "application/json", help="--init-expert-location with the loads: SGLang runs EPLB "
                                                         "on them at start-up", key=f"{key}_logical_count")
    cols[0].download_button("TensorRT-LLM YAML", files["trtllm"], f"eplb_config_{stem}.yaml", "application/yaml",
                            help="initial_global_assignments, as examples/ep_load_balancer writes it",
                            key=f"{key}_trtllm")
    cols[1].download_button("vLLM JSON", files["vllm"], f"expert_map_{stem}.json", "application/json",
                            help="eplb_config.initial_expert_map_path: one slot -> expert list per MoE layer "
                                 "(vLLM pull request 49572, not merged)", key=f"{key}_vllm")
    cols[2].download_button("vllm-ascend JSON", files["vllm_ascend"], f"expert_map_ascend_{stem}.json",
                            "application/json", help="expert_map_path: layer_list -> device_list -> device_expert",
                            key=f"{key}_vllm_ascend")


def replan_in_place(previous, fresh_moves) -> None:
    """The minimal-move re-plan from the uploaded plan (the CLI's ``--previous --tolerance``), its moves,
    its checks and its files."""
    st.subheader("Re-plan from the plan in place")
    cols = st.columns([2, 3])
    by = cols[0].radio("Re-plan to", ("a tolerance", "a move budget"), key="deploy_replan_by", horizontal=True,
                       help="a tolerance: each layer's busiest GPU within it of the fresh plan's, moving as few "
                            "replicas as the steps find; a move budget: the lightest busiest GPU the steps reach "
                            "moving at most so many replicas per layer")
    if by == "a tolerance":
        percent = float(cols[1].number_input("Busiest GPU within (% over the fresh plan's)", 0.0, 100.0, 0.5,
                                             step=0.1, format="%.2f", key="deploy_replan_tolerance"))
        tolerance, budget = percent / 100, None
    else:
        budget = int(cols[1].number_input("Replicas moved per layer, at most", 0, cluster.num_replicas,
                                          cluster.slots_per_gpu, key="deploy_replan_budget"))
        tolerance = None
    try:
        result = caches.replan_from(data.digest, previous, experts, phy2log, cluster, preset, tolerance, budget)
    except ValueError as error:
        st.error(escape_markdown(f"The re-planner cannot start from this plan: {error}"))
        return
    new = result.placement.phy2log
    moves = moves_between(previous, new, cluster, expert_bytes)
    after = balance(experts, new, cluster)
    found = check_plan(new, num_logical, cluster)
    aim = (f"each layer's busiest GPU within {tolerance:.2%} of the fresh plan's" if tolerance is not None else
           f"at most {count_of(budget, 'replica')} moved per layer")
    st.write(f"Re-planned to {aim}: balancedness {after.mean_balancedness:.4f} (the fresh plan "
             f"{score.mean_balancedness:.4f}), {len(moves):,} replicas moved where the fresh plan moves "
             f"{len(fresh_moves):,}: {moves.intra_bytes / 1e9:,.2f} GB within nodes, {moves.inter_bytes / 1e9:,.2f} GB "
             f"between them, {duration(moves.transfer_seconds(intra, inter))} (est.); "
             f"{int(result.from_fresh.sum()):,} layers took the fresh plan, renumbered.")
    if found.ok:
        st.success("The re-plan's checks pass: every expert has a slot in every layer, every GPU holds "
                   f"{cluster.slots_per_gpu} slots" + ("; every expert group sits on one node." if cluster.hierarchical
                                                       else "."))
    show_checks(found, "The re-plan: ")
    st.dataframe([dict(zip(MOVE_COLUMNS, row)) for row in moves.rows()], hide_index=True, width="stretch",
                 key="deploy_inplace_moves_table")
    stem = f"{preset}_replan_{cluster.num_replicas}slots_{cluster.num_gpus}gpus"
    st.download_button("Re-plan's moves CSV", moves_csv(moves), f"moves_{stem}.csv", "text/csv",
                       key="deploy_inplace_moves", help=",".join(MOVE_COLUMNS))
    if found.ok:
        st.caption("The re-plan's files:")
        export_buttons(caches.exports(data.digest, new, experts, cluster, first_layer, sglang_rows), stem,
                       "deploy_inplace", with_loads=False)
    else:
        st.info("The re-plan's files are held back: it fails the checks above. The fresh plan's files are above.")


show_checks(checks)
section = st.radio("View", SECTIONS, horizontal=True, key="deploy_section", label_visibility="collapsed")

if section == "Placement":
    layer = int(st.number_input("Layer", 0, num_layers - 1, key="deploy_layer")) \
        if num_layers > 1 else 0
    dense = not bool(moe[layer])
    st.subheader(f"Layer {layer}: dense, no load" if dense else f"Layer {layer}: nodes, GPUs and slots")
    if dense:
        st.info(f"Layer {layer} has no expert load in this data (a dense layer of the model): it has no experts "
                "to balance and stays out of every mean. Its slots below are the plan's map, kept so that the "
                "layers line up with the model's.")
    st.caption("Each cell is a slot with its expert id, coloured by the slot's load (its expert's load over its "
               "replicas); * marks an expert with several replicas, a red ring a replica on a GPU that already "
               "holds its expert.")
    st.plotly_chart(caches.placement_view(data.digest, phy2log, experts, cluster, preset, layer), width="stretch",
                    key="deploy_placement")
    st.plotly_chart(caches.bars_view(data.digest, phy2log, experts, cluster, preset, layer), width="stretch",
                    key="deploy_bars")
    st.subheader("Every layer: each GPU's load over its layer's mean")
    st.plotly_chart(caches.heatmap_view(data.digest, phy2log, experts, cluster, preset), width="stretch",
                    key="deploy_heatmap")

elif section == "Balance":
    compared = st.multiselect("Packers", PLANNERS, default=list(DEFAULT_COMPARED), key="deploy_compared",
                              help="eplb is DeepSeek's greedy; slower presets take seconds on large data")
    making = st.progress(0.0, text="Comparing plans…")
    rows = caches.comparison(data.digest, experts, cluster, tuple(compared), progress=lambda done, total:
                             making.progress(done / total, text=f"Comparing plans: {done} of {total} made"))
    making.empty()
    if not rows:
        st.info("Neither policy can place this data on this cluster.")
    else:
        # the table takes the page's width (beside the chart its last columns were cut at 1366 px)
        table, chart = st.container(), st.container()
        shown = [{"plan": f"{row['plan']} ({row['policy']})", "balancedness": row["balancedness"],
                  "imbalance": row["imbalance"] * 100, "bound / mean": row["bound_over_mean"],
                  "seconds": row["seconds"]} for row in rows]
        table.dataframe(shown, hide_index=True, width="stretch", column_config={
            "balancedness": st.column_config.NumberColumn("balancedness (mean/max)", format="%.5f"),
            "imbalance": st.column_config.NumberColumn("imbalance ((max-mean)/mean)", format="%.4g%%"),
            "bound / mean": st.column_config.NumberColumn("policy's bound / mean", format="%.4f"),
            "seconds": st.column_config.NumberColumn("seconds", format="%.3f")})
        chart.plotly_chart(balance_comparison_figure(
            [{**row, "plan": f"{row['plan']} ({row['policy'][0]})"} for row in rows]), width="stretch",
            key="deploy_comparison")
        bounds = {row["policy"]: row["bound_over_mean"] for row in rows}
        best = {policy: min(r["imbalance"] for r in rows if r["policy"] == policy) for policy in bounds}
        if len(bounds) == 2:
            st.write(f"The price of the hierarchy on these loads: keeping each expert group on one node bounds any "
                     f"plan at {bounds['hierarchical']:.4f}x the mean GPU load (its best here: "
                     f"{1 + best['hierarchical']:.4f}x), where the global policy reaches "
                     f"{1 + best['global']:.5f}x.")

elif section == "Over time":
    if data.steps is not None:
        total = data.steps.shape[0]
        steps_made = f"the data's {total} steps"
        source = data.steps
        history_key = ("data",)
    else:
        st.info("This data has no time axis (an SGLang recorder dump, a [steps, layers, experts] upload or the moe "
                "generator with steps has one): below, a history that starts at these loads and drifts.")
        cols = st.columns(3)
        total = int(cols[0].number_input("Steps", 4, 200, 16, key="deploy_sim_steps"))
        # 0.005 a step: over a window of 2 steps each load moves by about exp(0.1 x N(0, 1))
        drift = float(cols[1].number_input("Drift per step", 0.0, 1.0, 0.005, step=0.005, format="%.3f",
                                           key="deploy_sim_drift"))
        seed = int(cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="deploy_sim_seed"))
        source = drifting_from(experts, total, seed=seed, drift=drift)
        steps_made = f"{total} drifting steps"
        history_key = ("drifting", total, drift, seed)
    window = int(st.number_input("Window (steps per re-plan)", 1, max(1, total // 2), min(2, max(1, total // 2)),
                                 key="deploy_window"))
    try:
        history = windows(source, window)
    except ValueError as error:
        st.error(escape_markdown(str(error)))
        st.stop()
    run_key = (data.digest, *history_key, window, cluster, preset, expert_bytes)
    runs = caches.finished_history(run_key)
    if runs is None:
        job = caches.history_job(history, cluster, preset, expert_bytes, run_key)
        # a short history is drawn in this run, as if it had never left; a long one runs on while the page
        # (the sidebar, the other sections) answers, and its progress is drawn by a fragment on a timer
        # the wait counts from the run's start: coming back to a run under way draws its progress at once
        runs = job.wait(max(0.0, OVER_TIME_INLINE_S - job.age_s))
    if runs is None:
        count = history.shape[0] - 1

        def over_time_progress() -> None:
            # the run this page started or joined: looked up again, a failed one would start afresh every
            # second and its error never show
            current = job
            current.touch()
            if current.result is not None:
                st.rerun()  # the whole page: the finished run's chart and table
            if current.error:
                st.error(escape_markdown(f"Over time failed: {current.error}"))
            elif current.waiting:
                st.progress(0.0, text="Waiting for other sessions' Over time runs to finish…")
            else:
                # progress counts each planner's plan on a window: a window is done when all have planned on it
                planned = current.done * count // current.total if current.total else 0
                st.progress(planned / count,
                            text=f"Planning on {count} of the {history.shape[0]} windows ({count} fresh plans and "
                                 f"{count - 1} re-plans; the last window is only served): {planned} of {count} "
                                 "windows planned")
            st.caption("The plans are made in the background: the sidebar and the other sections work meanwhile, "
                       "and the result waits here.")

        st.fragment(run_every=1.0)(over_time_progress)()
        st.stop()
    st.write(f"{history.shape[0]} windows of {window} steps from {steps_made}: each plan is made on one window "
             "and scored on the next, as a serving engine re-plans on what it has seen and then serves what comes.")
    st.plotly_chart(over_time_figure(runs), width="stretch", key="deploy_over_time")
    # the table's planner column is narrow: the re-planner's name without "from the plan in place"
    TABLE_NAMES = {caches.REPLANNED: f"re-planned (within {caches.REPLAN_TOLERANCE:.1%} of fresh)"}
    rows = []
    for name, run in runs.items():
        for index, moves in enumerate(run.moves):
            if moves is None:
                continue
            rows.append({"planner": TABLE_NAMES.get(name, name), "window": index,
                         "balancedness next": float(run.balancedness[index]),
                         "replicas moved": len(moves), "intra-node GB": moves.intra_bytes / 1e9,
                         "inter-node GB": moves.inter_bytes / 1e9,
                         "transfer s (est.)": moves.transfer_seconds(intra, inter)})
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "balancedness next": st.column_config.NumberColumn("balancedness on the next window", format="%.5f"),
        "intra-node GB": st.column_config.NumberColumn(format="%.2f"),
        "inter-node GB": st.column_config.NumberColumn(format="%.2f"),
        "transfer s (est.)": st.column_config.NumberColumn(format="%.3f")})
    for name, run in runs.items():
        for index in run.failed:
            st.error(f"The {name} plan made on window {index} failed its checks: {run.problems[index][0]}")
    kept, fresh, replanned = runs[caches.KEPT], runs[caches.FRESH], runs[caches.REPLANNED]
    st.caption(f"Mean next-window balancedness ({over}): kept {float(kept.balancedness.mean()):.5f}, fresh "
               f"{float(fresh.balancedness.mean()):.5f}, re-planned {float(replanned.balancedness.mean()):.5f}. "
               "The re-planner starts from the plan in place and moves the fewest replicas it can find while "
               f"each layer's busiest GPU stays within {caches.REPLAN_TOLERANCE:.1%} of a fresh plan's"
               + (": every expert group stays on one node, and a node too heavy for that trades whole groups "
                  "with another node. " if cluster.hierarchical else ". ") +
               "A replica moves when its expert was not on that GPU before "
               f"(its {expert_mb:,.6g} MB must be copied there); the time assumes every GPU receives at once, at "
               f"{intra:,.6g} GB/s within a node and {inter:,.6g} GB/s between nodes.")

    tolerance = caches.REPLAN_TOLERANCE
    if len(replanned.plans) < 2:
        st.info("The re-planner needs a plan in place and a later window to re-plan on: more steps or a shorter "
                "window bring one.")
    else:
        last = len(replanned.plans) - 1
        # a window beyond this history's (fewer steps, a longer window) is its last re-plan
        if not 1 <= st.session_state.get("deploy_replan_window", last) <= last:
            st.session_state.deploy_replan_window = last
        chosen = int(st.number_input("Re-plan on window", 1, last, last, key="deploy_replan_window",
                                     help="the plan made on this window from the previous window's plan"))
        moves = replanned.moves[chosen]
        slots = num_layers * cluster.num_replicas
        st.subheader(f"The re-plan on window {chosen}")
        st.write(f"The re-planner moved {len(moves):,} replicas "
                 f"({len(moves) / slots:.1%} of the {slots:,} slots; {int(moves.intra_node.sum()):,} within nodes, "
                 f"{int((~moves.intra_node).sum()):,} between them), a fresh plan "
                 f"{len(fresh.moves[chosen]):,} ({len(fresh.moves[chosen]) / slots:.1%}).")
        # the curve re-plans the window at a dozen move budgets: more than Over time's own plans, so on request
        if st.toggle("Balance against moves: re-plan this window at every move budget", key="deploy_curve"):
            curve = caches.moves_curve(data.digest, history[chosen], replanned.plans[chosen - 1], cluster, preset,
                                       (*history_key, window, chosen))
            st.plotly_chart(moves_curve_figure(curve, len(moves) / num_layers, tolerance), width="stretch",
                            key="deploy_moves_curve")
            enough = next(((budget, moved) for budget, worst, moved in
                           zip(curve.budgets, curve.worst_ratio, curve.mean_moves) if worst <= 1 + tolerance), None)
            reach = (f"with a budget of {enough[0]:,} moves a layer (the re-plans then move {enough[1]:,.1f} a layer "
                     f"on average, the chart's x) every layer's busiest GPU is within {tolerance:.1%} of a fresh "
                     "plan's" if enough is not None else
                     f"no budget shown brings every layer within {tolerance:.1%} of a fresh plan (the re-planner "
                     "takes the fresh plan, renumbered, on the layers the steps cannot bring there)")
            st.write(f"Each point re-plans window {chosen}'s loads from window {chosen - 1}'s plan with at most so "
                     f"many replicas moved per layer: {reach}.")
        st.dataframe([dict(zip(MOVE_COLUMNS, row)) for row in moves.rows()], hide_index=True, width="stretch",
                     key="deploy_replan_moves_table")
        st.download_button("Re-plan moves CSV", moves_csv(moves), f"replan_moves_window{chosen}.csv", "text/csv",
                           key="deploy_replan_moves", help=",".join(MOVE_COLUMNS))

else:
    cols = st.columns(2)
    first_layer = int(cols[0].number_input("First MoE layer's number", 0, 10_000, 0, key="deploy_first_layer",
                                           help="the model's number of the first row here: TensorRT-LLM's YAML "
                                                "keys, and the dense rows before it in SGLang's map"))
    model_layers = int(cols[1].number_input(
        "The model's layers (SGLang map rows; 0: these rows)", 0, 10_000, 0, key="deploy_model_layers",
        help="SGLang builds its map for every layer of the model (61 for DeepSeek-V3, whose first 3 are dense): "
             "rows before the first MoE layer and after the last hold the trivial map"))
    sglang_rows = model_layers or None
    if sglang_rows is not None and sglang_rows < first_layer + num_layers:
        st.error(f"Layers {first_layer} to {first_layer + num_layers - 1} do not fit in a model of {sglang_rows} "
                 "layers; the SGLang map holds these rows alone.")
        sglang_rows = None
    stem = f"{preset}_{cluster.num_replicas}slots_{cluster.num_gpus}gpus"
    export_buttons(caches.exports(data.digest, phy2log, experts, cluster, first_layer, sglang_rows), stem,
                   "deploy")
    st.subheader("From the plan in place")
    upload = st.file_uploader("The plan in place: SGLang .json, placement .csv or TensorRT-LLM .yaml",
                              type=["json", "csv", "yaml", "yml"], key="deploy_previous")
    if upload is not None:
        try:
            previous = read_plan(upload.getvalue(), upload.name, layers=phy2log.shape[0])
            if tuple(previous.shape) != tuple(phy2log.shape):
                raise PlanFileError(f"{upload.name}: the plan is {previous.shape[0]} layers x {previous.shape[1]} "
                                    f"slots; the plan on screen is {phy2log.shape[0]} x {phy2log.shape[1]}")
            if int(previous.max()) >= num_logical:
                raise PlanFileError(f"{upload.name}: names expert {int(previous.max())}, the data has "
                                    f"{num_logical}")
            # the plan in place may follow another policy; it must only serve every expert
            found = check_plan(previous, num_logical, dataclasses.replace(cluster, policy="global"))
            if not found.ok:
                raise PlanFileError(f"{upload.name}: {found.sentences()[0]}")
        except PlanFileError as error:
            st.error(escape_markdown(str(error)))
        else:
            moves = moves_between(previous, phy2log, cluster, expert_bytes)
            before = balance(experts, previous, cluster)
            st.write(f"The plan in place has balancedness {before.mean_balancedness:.4f} on these loads, the fresh "
                     f"plan above {score.mean_balancedness:.4f}. Going to the fresh plan moves {len(moves):,} "
                     f"replicas: {moves.intra_bytes / 1e9:,.2f} GB within nodes, {moves.inter_bytes / 1e9:,.2f} GB "
                     f"between them, {duration(moves.transfer_seconds(intra, inter))} (est.).")
            st.download_button("Moves CSV", moves_csv(moves), f"moves_{stem}.csv", "text/csv", key="deploy_moves",
                               help=",".join(MOVE_COLUMNS))
            replan_in_place(previous, moves)
