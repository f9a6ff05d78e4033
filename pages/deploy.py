"""Deploy: the whole EPLB placement for a cluster, its checks, its balance, how it holds up over time, its files."""

from __future__ import annotations

import dataclasses

import streamlit as st

from ui.router import require_router

require_router()

st.title("Deploy: the whole expert placement")
starting = st.empty()
with starting.container(), st.spinner("Loading the planner…"):
    from packviz.config import PRESETS
    from packviz.data.generators import drifting_from
    from packviz.eplb.cluster import POLICIES, Cluster, balance, check_plan, default_cluster
    from packviz.eplb.moves import (
        DEEPSEEK_V3_EXPERT_BYTES,
        INTER_NODE_GBPS,
        INTRA_NODE_GBPS,
        MOVE_COLUMNS,
        moves_between,
    )
    from packviz.eplb.over_time import windows
    from packviz.io.deploy import PlanFileError, moves_csv, read_plan
    from packviz.text import escape_markdown
    from packviz.viz.deploy import balance_comparison_figure, moves_curve_figure, over_time_figure
    from ui import deploy_caches as caches
    from ui.deploy_view import SECTIONS, publish_view, restore_view
    from ui.sidebars import data_sidebar
starting.empty()

PLANNERS = ("eplb", *[name for name in PRESETS if name != "eplb"])
DEFAULT_COMPARED = ("eplb", "fast", "best")
POLICY_WORDS = {"auto": "auto (DeepSeek's rule)", "hierarchical": "hierarchical", "global": "global"}

for problem in restore_view():
    st.warning(f"Shared link: {problem}.")
data = data_sidebar()
experts = data.experts if data.experts is not None else data.weight
num_layers, num_logical = experts.shape

# A new number of experts brings a cluster that fits it; any other change keeps the user's cluster,
# and so does a link's on the first visit.
if st.session_state.get("deploy_experts") != num_logical:
    first_visit = "deploy_experts" not in st.session_state
    start = default_cluster(num_logical)
    defaults = {"deploy_replicas": start.num_replicas, "deploy_groups": start.num_groups or 0,
                "deploy_nodes": start.num_nodes, "deploy_gpus": start.num_gpus}
    for key, value in defaults.items():
        if not (first_visit and key in st.session_state):
            st.session_state[key] = value
    st.session_state.deploy_experts = num_logical
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
    expert_mb = st.number_input("One expert's weights (MB)", 0.001, 1e6, DEEPSEEK_V3_EXPERT_BYTES / 1e6,
                                key="deploy_expert_mb", help="default: DeepSeek-V3's expert in FP8, 3 x 7168 x 2048")
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

# the data's own description speaks of its slots (Explore packs those); Deploy plans from the logical experts
st.caption(escape_markdown(f"{data.source}: the loads of {num_logical} logical experts in {num_layers} layers, "
                           f"total {float(experts.sum()):,.0f}; Deploy replicates and places them itself"))
st.write(f"{num_layers} MoE layers x {num_logical} experts into {cluster.num_replicas} slots on "
         f"{cluster.num_gpus} GPUs ({cluster.slots_per_gpu} each) over {cluster.num_nodes} nodes, "
         f"{cluster.num_groups or 'no'} expert groups, {mode} policy, `{preset}` packing each stage.")
cols = st.columns(4)
cols[0].metric("Balancedness (mean/max)", f"{float(score.balancedness.mean()):.4f}",
               help="mean over layers of mean GPU load / busiest GPU load, as SGLang and vLLM report it")
cols[1].metric("Imbalance ((max-mean)/mean)", f"{float(score.imbalance.mean()) * 100:.4g}%",
               help="mean over layers, as TensorRT-LLM reports it")
cols[2].metric(f"Bound of the {mode} policy", f"{float(score.bound_over_mean.mean()):.4f}x mean",
               help="no plan of this policy has a lighter busiest GPU (hierarchical: groups stay on their node)")
cols[3].metric("Same-GPU duplicate slots", f"{int(checks.duplicates.sum()):,}")

if checks.ok:
    passed = [f"every expert has a slot in each of the {num_layers} layers",
              f"every GPU holds {cluster.slots_per_gpu} slots"]
    if cluster.hierarchical:
        passed.append("every expert group sits on one node")
    st.success("Checks pass: " + "; ".join(passed) + ".")
for sentence in checks.sentences():
    (st.warning if checks.ok else st.error)(sentence)

section = st.radio("View", SECTIONS, horizontal=True, key="deploy_section", label_visibility="collapsed")

if section == "Placement":
    layer = int(st.number_input("Layer", 0, num_layers - 1, key="deploy_layer")) \
        if num_layers > 1 else 0
    st.subheader(f"Layer {layer}: nodes, GPUs and slots")
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
    rows = caches.comparison(data.digest, experts, cluster, tuple(compared))
    if not rows:
        st.info("Neither policy can place this data on this cluster.")
    else:
        table, chart = st.columns([3, 2])
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
    runs = caches.history(data.digest, history, cluster, preset, expert_bytes, (*history_key, window))
    st.write(f"{history.shape[0]} windows of {window} steps from {steps_made}: each plan is made on one window "
             "and scored on the next, as a serving engine re-plans on what it has seen and then serves what comes.")
    st.plotly_chart(over_time_figure(runs), width="stretch", key="deploy_over_time")
    rows = []
    for name, run in runs.items():
        for index, moves in enumerate(run.moves):
            if moves is None:
                continue
            rows.append({"planner": name, "window": index, "balancedness next": float(run.balancedness[index]),
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
    st.caption(f"Mean next-window balancedness: kept {float(kept.balancedness.mean()):.5f}, fresh "
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
        st.subheader(f"The re-plan on window {chosen}: balance against moves")
        curve = caches.moves_curve(data.digest, history[chosen], replanned.plans[chosen - 1], cluster, preset,
                                   (*history_key, window, chosen))
        st.plotly_chart(moves_curve_figure(curve, len(moves) / num_layers, tolerance), width="stretch",
                        key="deploy_moves_curve")
        enough = next((budget for budget, worst in zip(curve.budgets, curve.worst_ratio) if worst <= 1 + tolerance),
                      None)
        reach = (f"with at most {enough:,} moves a layer every layer's busiest GPU is within {tolerance:.1%} of a "
                 "fresh plan's" if enough is not None else
                 f"no budget shown brings every layer within {tolerance:.1%} of a fresh plan (the re-planner takes "
                 "the fresh plan, renumbered, on the layers the steps cannot bring there)")
        st.write(f"Each point re-plans window {chosen}'s loads from window {chosen - 1}'s plan with at most so many "
                 f"replicas moved per layer: {reach}. The re-planner moved {len(moves):,} replicas "
                 f"({len(moves) / slots:.1%} of the {slots:,} slots; {int(moves.intra_node.sum()):,} within nodes, "
                 f"{int((~moves.intra_node).sum()):,} between them), a fresh plan "
                 f"{len(fresh.moves[chosen]):,} ({len(fresh.moves[chosen]) / slots:.1%}).")
        st.dataframe([dict(zip(MOVE_COLUMNS, row)) for row in moves.rows()], hide_index=True, width="stretch",
                     key="deploy_replan_moves_table")
        st.download_button("Re-plan moves CSV", moves_csv(moves), f"replan_moves_window{chosen}.csv", "text/csv",
                           key="deploy_replan_moves", help=",".join(MOVE_COLUMNS))

else:
    first_layer = int(st.number_input("First MoE layer's number (TensorRT-LLM YAML keys)", 0, 10_000, 0,
                                      key="deploy_first_layer"))
    files = caches.exports(data.digest, phy2log, experts, cluster, preset, first_layer)
    stem = f"{preset}_{cluster.num_replicas}slots_{cluster.num_gpus}gpus"
    cols = st.columns(4)
    cols[0].download_button("Placement CSV", files["csv"], f"placement_{stem}.csv", "text/csv",
                            help="layer,node,gpu,slot,expert,replica,load", key="deploy_csv")
    cols[1].download_button("SGLang JSON", files["sglang"], f"expert_location_{stem}.json", "application/json",
                            help="--init-expert-location: physical_to_logical_map", key="deploy_sglang")
    cols[2].download_button("SGLang logical_count JSON", files["logical_count"], "logical_count.json",
                            "application/json", help="--init-expert-location with the loads: SGLang runs EPLB on "
                                                     "them at start-up", key="deploy_logical_count")
    cols[3].download_button("TensorRT-LLM YAML", files["trtllm"], f"eplb_config_{stem}.yaml", "application/yaml",
                            help="initial_global_assignments, as examples/ep_load_balancer writes it",
                            key="deploy_trtllm")
    st.subheader("Moves from the plan in place")
    upload = st.file_uploader("The plan in place: SGLang .json, placement .csv or TensorRT-LLM .yaml",
                              type=["json", "csv", "yaml", "yml"], key="deploy_previous")
    if upload is not None:
        try:
            previous = read_plan(upload.getvalue(), upload.name)
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
            st.write(f"The plan in place has balancedness {float(before.balancedness.mean()):.4f} on these loads, "
                     f"the plan on screen {float(score.balancedness.mean()):.4f}. Going there moves {len(moves):,} "
                     f"replicas: {moves.intra_bytes / 1e9:,.2f} GB within nodes, {moves.inter_bytes / 1e9:,.2f} GB "
                     f"between them, about {moves.transfer_seconds(intra, inter):.3f} s.")
            st.download_button("Moves CSV", moves_csv(moves), f"moves_{stem}.csv", "text/csv", key="deploy_moves",
                               help="layer,expert,replica,from_node,from_gpu,from_slot,to_node,to_gpu,to_slot,bytes")
