"""``python -m packviz rebalance``: a whole EPLB plan for a cluster, with the Deploy page's checks and files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from packviz.config import PRESETS
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import POLICIES, Cluster, balance, check_plan, layers_phrase, place
from packviz.eplb.models import model_for
from packviz.eplb.moves import DEEPSEEK_V3_EXPERT_BYTES, INTER_NODE_GBPS, INTRA_NODE_GBPS, moves_between
from packviz.eplb.replan import plan_moves
from packviz.io.deploy import (
    moves_csv,
    placement_csv,
    read_plan,
    sglang_json,
    trtllm_yaml,
    vllm_ascend_json,
    vllm_json,
)
from packviz.text import count_of, duration

# The app's preset (ui/sidebars.py APP_PRESET): the CLI and the page make the same plan by default.
APP_PRESET = "fast"
FROM_DATA = object()  # --groups not given: the groups of the data's model, else none


def _groups(text: str) -> int | None:
    if text.lower() in {"none", "0"}:
        return None
    return int(text)


def add_rebalance_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rebalance",
        help="place every layer's experts, replicas included, on the GPUs of a cluster",
        description=(
            "Replicate the hottest experts of LOADS (one row per MoE layer, one column per logical expert; "
            "[steps, layers, experts] files are summed over the steps) into --replicas slots and place them on "
            "--gpus GPUs over --nodes nodes, as DeepSeek's EPLB does, with a packviz preset packing each stage. "
            "Writes SGLang's --init-expert-location JSON, the placement CSV "
            "(layer,node,gpu,slot,expert,replica,load), TensorRT-LLM's EPLB YAML, vLLM's and vllm-ascend's "
            "expert maps and, given --previous, the replicas to move from that plan."),
    )
    parser.add_argument("loads", help="load file: one row per MoE layer, one column per logical expert")
    parser.add_argument("--replicas", type=int, required=True, help="physical expert slots per layer (>= experts)")
    parser.add_argument("--groups", type=_groups, default=FROM_DATA, metavar="G",
                        help="expert groups (none: a model without groups, placed globally; default: the groups "
                             "of the model whose shape the loads have, e.g. DeepSeek-V3's 8, else none)")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus", type=int, required=True, help="GPUs in all (EP ranks)")
    parser.add_argument("--policy", choices=POLICIES, default="auto",
                        help="hierarchical: expert groups onto nodes first; global: one pool; auto (default): "
                             "DeepSeek's rule, hierarchical when the groups divide among the nodes")
    parser.add_argument("--preset", default=APP_PRESET, choices=list(PRESETS),
                        help=f"the packer of each stage (default {APP_PRESET}, as the app; eplb: DeepSeek's own "
                             "greedy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--previous", metavar="PLAN",
                        help="the plan in place (any file convert reads: SGLang, vLLM or vllm-ascend .json, .csv "
                             "placement or TensorRT-LLM .yaml): a fresh "
                             "plan is made and the replicas it moves are listed")
    parser.add_argument("--tolerance", type=float, metavar="T",
                        help="with --previous: re-plan from the plan in place instead of from scratch, each layer's "
                             "busiest GPU within T (e.g. 0.005) of a fresh plan's, moving as few replicas as it can")
    parser.add_argument("--sglang", metavar="FILE", help="write SGLang's physical_to_logical_map JSON here")
    parser.add_argument("--csv", metavar="FILE", help="write the placement CSV here")
    parser.add_argument("--trtllm", metavar="FILE", help="write TensorRT-LLM's EP load-balancer YAML here")
    parser.add_argument("--vllm", metavar="FILE",
                        help="write vLLM's initial expert map JSON here (eplb_config.initial_expert_map_path, "
                             "pull request #49572)")
    parser.add_argument("--vllm-ascend", metavar="FILE", help="write vllm-ascend's expert_map_path JSON here")
    parser.add_argument("--first-layer", type=int, default=0,
                        help="the model's number of the first MoE layer (DeepSeek-V3: 3): the TensorRT-LLM YAML's "
                             "first key, and SGLang's map gets that many dense rows before the plan's (default 0)")
    parser.add_argument("--num-layers", type=int, metavar="N",
                        help="the model's layer count, dense layers included (DeepSeek-V3: 61): SGLang's map gets a "
                             "row for each (default: --first-layer plus the loads' rows)")
    parser.add_argument("--moves", metavar="FILE", help="with --previous: write the moves CSV here")
    parser.add_argument("--expert-bytes", type=int, default=None,
                        help="bytes of one expert's weights (default: the model's whose shape the loads have, see "
                             f"packviz/eplb/models.py, else {DEEPSEEK_V3_EXPERT_BYTES:,}: DeepSeek-V3's in FP8)")
    parser.add_argument("--intra-gbps", type=float, default=INTRA_NODE_GBPS, help="intra-node GB/s per GPU")
    parser.add_argument("--inter-gbps", type=float, default=INTER_NODE_GBPS, help="inter-node GB/s per GPU")


def rebalance_command(args: argparse.Namespace) -> int:
    loaded = read_loads(args.loads)
    weight = loaded.weight
    num_layers, num_logical = weight.shape
    model = model_for(weight)
    if args.groups is FROM_DATA:
        args.groups = model.num_groups if model else None
    if args.expert_bytes is None:
        args.expert_bytes = model.expert_bytes if model else DEEPSEEK_V3_EXPERT_BYTES
    cluster = Cluster(args.replicas, args.groups, args.nodes, args.gpus, args.policy)
    cluster.check(num_logical)
    if args.first_layer < 0:
        raise ValueError(f"--first-layer is the model's number of its first MoE layer, 0 or more, not "
                         f"{args.first_layer}")
    if args.num_layers is not None and args.num_layers < args.first_layer + num_layers:
        raise ValueError(f"--num-layers {args.num_layers} is too few for {num_layers} MoE layers from layer "
                         f"{args.first_layer}: the model needs at least {args.first_layer + num_layers} layers")
    if args.moves and not args.previous:
        raise ValueError("--moves lists the replicas to move from a plan in place: give it with --previous")
    if args.tolerance is not None and not args.previous:
        raise ValueError("--tolerance re-plans from a plan in place: give it with --previous")
    if args.tolerance is not None and not args.tolerance >= 0:
        raise ValueError(f"--tolerance must be 0 or more (a fraction: 0.005 is half a percent), got {args.tolerance}")
    previous = None
    if args.previous:
        previous = read_plan(args.previous, layers=num_layers)
        if tuple(previous.shape) != (num_layers, args.replicas):
            raise ValueError(f"{args.previous}: the plan is {previous.shape[0]} layers x {previous.shape[1]} slots; "
                             f"these loads and --replicas need {num_layers} x {args.replicas}")
        if int(previous.max()) >= num_logical:
            raise ValueError(f"{args.previous}: names expert {int(previous.max())}, the loads have {num_logical}")
        # the plan in place may follow another policy; it must only serve every expert
        problems = check_plan(previous, num_logical, dataclasses.replace(cluster, policy="global"))
        if not problems.ok:
            raise ValueError(f"{args.previous}: {problems.sentences()[0]}")
    if args.tolerance is not None:
        replanned = plan_moves(weight, previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                               tolerance=args.tolerance, packer=args.preset, seed=args.seed,
                               hierarchical=cluster.hierarchical)
        plan = replanned.placement.phy2log
    else:
        plan = place(weight, cluster, args.preset, args.seed).phy2log
    checks = check_plan(plan, num_logical, cluster)
    score = balance(weight, plan, cluster)
    mode = "hierarchical" if cluster.hierarchical else "global"
    print(loaded.description)
    print(f"{args.replicas} slots on {count_of(args.gpus, 'GPU')} ({cluster.slots_per_gpu} each) over "
          f"{count_of(args.nodes, 'node')}, {args.groups or 'no'} expert groups, {mode} policy, preset {args.preset}")
    print(f"balancedness (mean/max) {score.mean_balancedness:.4f}, imbalance ((max-mean)/mean) "
          f"{score.mean_imbalance:.4%}, bound of the {mode} policy {score.mean_bound_over_mean:.4f}x the mean "
          f"(means over {layers_phrase(score.moe)})")
    for sentence in checks.sentences():
        print(f"check: {sentence}")
    if not checks.ok:
        # a plan that leaves an expert without a slot or spreads a group over nodes
        # must not reach a serving engine: no file is written
        print("the plan failed its checks; nothing written", file=sys.stderr)
        return 1
    written = []
    if previous is not None:
        kept = balance(weight, previous, cluster)
        moves = moves_between(previous, plan, cluster, args.expert_bytes)
        seconds = moves.transfer_seconds(args.intra_gbps, args.inter_gbps)
        if args.tolerance is not None:
            ratio = replanned.peak / replanned.fresh_peak.clamp_min(1e-300)
            print(f"re-planned from the previous plan: busiest GPU at most {float(ratio.max()):.4f}x a fresh "
                  f"{args.preset} plan's (mean {float(ratio.mean()):.4f}x; tolerance {args.tolerance:g}), "
                  f"{float(replanned.moves.total.double().mean()):.1f} replicas moved per layer "
                  f"({float(replanned.moves.intra_node.double().mean()):.1f} within nodes, "
                  f"{float(replanned.moves.inter_node.double().mean()):.1f} between)")
            if cluster.hierarchical and int(replanned.groups_moved.sum()):
                print(f"{int(replanned.groups_moved.sum())} expert groups moved to another node, whole, in "
                      f"{int((replanned.groups_moved > 0).sum())} of {num_layers} layers (every group stays on "
                      "one node)")
        print(f"previous plan on these loads: balancedness {kept.mean_balancedness:.4f}; the new plan moves "
              f"{len(moves)} replicas, {moves.intra_bytes / 1e9:.2f} GB within nodes and "
              f"{moves.inter_bytes / 1e9:.2f} GB between them, {duration(seconds)} (est.)")
        if args.moves:
            Path(args.moves).write_text(moves_csv(moves))
            written.append(args.moves)
    if args.sglang:
        Path(args.sglang).write_text(sglang_json(plan, first_layer=args.first_layer, num_layers=args.num_layers))
        written.append(args.sglang)
    if args.csv:
        Path(args.csv).write_text(placement_csv(plan, weight, cluster))
        written.append(args.csv)
    if args.trtllm:
        Path(args.trtllm).write_text(trtllm_yaml(plan, args.first_layer))
        written.append(args.trtllm)
    if args.vllm:
        Path(args.vllm).write_text(vllm_json(plan))
        written.append(args.vllm)
    if args.vllm_ascend:
        Path(args.vllm_ascend).write_text(vllm_ascend_json(plan, args.gpus, args.vllm_ascend))
        written.append(args.vllm_ascend)
    for path in written:
        print(f"written: {path}")
    return 0
