"""``python -m packviz replay``: an engine's EPLB loop over a load trace, with the plans it put in place."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from packviz.eplb.cluster import Cluster
from packviz.eplb.forecast import make_planner
from packviz.eplb.replay import TRIGGERS, ReplaySettings, check_trace, engine_flags, replay


def add_replay_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "replay",
        help="run an EPLB loop over a load trace and score each plan on the traffic it served",
        description=(
            "Replay TRACE ([windows, layers, experts] loads, .npy) window by window: after each window a planner "
            "makes the plan for the next from the windows seen so far, and each plan is scored on the window it "
            "served. Without --groups/--nodes the policy is global."),
    )
    parser.add_argument("trace", help=".npy of [windows, layers, experts] loads, or a routing trace "
                                      "(SGLang recorder dump, routed experts, token log; its first phase)")
    parser.add_argument("--slots", type=int, required=True, help="physical expert slots per layer (>= experts)")
    parser.add_argument("--gpus", type=int, required=True, help="GPUs in all (EP ranks)")
    parser.add_argument("--groups", type=int, help="expert groups (with --nodes: the hierarchical policy)")
    parser.add_argument("--nodes", type=int, help="nodes (with --groups: every group's replicas on one node)")
    parser.add_argument("--window", type=int, default=1, metavar="W",
                        help="trace rows summed into one window (default 1: each row a window)")
    parser.add_argument("--planner", default="auto",
                        help="auto (default: picks by backtest on the windows seen), last (a plan on the last "
                             "window alone, as engines do), mean[:K], ema[:HALF_LIFE], mean_sd[:K[:Z]], robust[:K]")
    parser.add_argument("--interval", type=int, default=1, metavar="I", help="re-plan every I windows (default 1)")
    parser.add_argument("--trigger", choices=TRIGGERS, default="interval",
                        help="interval (default), utilization (SGLang's gate, with --threshold) or drop (FlashLB's)")
    parser.add_argument("--threshold", type=float, default=1.0,
                        help="with --trigger utilization: skip a re-plan while balancedness is above this")
    parser.add_argument("--max-moves", type=int, metavar="N", help="at most N replicas moved per layer a re-plan")
    parser.add_argument("--layers-per-chunk", type=int, metavar="N",
                        help="a re-plan goes in N layers a window (default: all at once)")
    parser.add_argument("--packer", default="eplb", help="the preset of every fresh plan (default eplb)")
    parser.add_argument("--window-seconds", type=float, default=60.0,
                        help="wall time of one window, for GB moved an hour (default 60)")
    parser.add_argument("--window-passes", type=int, default=1000,
                        help="forward passes in one window, for the engines' flags (default 1000)")
    parser.add_argument("--plans-out", metavar="FILE",
                        help="write the plans, int64 [windows - 1, layers, slots] .npy: row i in force in window i+1")
    parser.add_argument("--json", metavar="FILE", help="write a JSON summary here")


def read_trace_file(path: str, window: int) -> torch.Tensor:
    """[windows, layers, experts] float64 from an ``.npy`` of loads (``window`` rows summed into one), or from
    any routing trace ``packviz.data.traces.read_trace`` reads (``window`` forward passes a window; the first
    phase it finds), or ValueError."""
    file = Path(path)
    if not file.exists():
        raise ValueError(f"{path}: no such file")
    if window < 1:
        raise ValueError(f"--window must be at least 1, got {window}")
    if file.suffix.lower() != ".npy" or file.is_dir():
        from packviz.data.traces import read_trace

        series = read_trace(file, window=window)
        if not series:
            raise ValueError(f"{path}: no routed tokens found")
        return check_trace(series[0].loads)
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from None
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{path}: loads must be numbers, the array holds {array.dtype}")
    if array.ndim != 3:
        raise ValueError(f"{path}: expected [windows, layers, experts], got {array.ndim} dimensions "
                         f"of shape {tuple(array.shape)}")
    count = array.shape[0] // window
    if count < 2:
        raise ValueError(f"{path}: {array.shape[0]} rows make {count} window(s) of {window}; a replay needs at least 2")
    trace = torch.from_numpy(np.ascontiguousarray(array[:count * window], dtype=np.float64))
    trace = trace.reshape(count, window, *array.shape[1:]).sum(dim=1)
    return check_trace(trace)


def replay_command(args: argparse.Namespace) -> int:
    if (args.groups is None) != (args.nodes is None) and args.groups is not None:
        raise ValueError("--groups needs --nodes: the hierarchical policy keeps every group's replicas on one node")
    trace = read_trace_file(args.trace, args.window)
    num_windows, num_layers, num_logical = trace.shape
    nodes = args.nodes if args.nodes is not None else 1
    policy = "hierarchical" if args.groups is not None else "global"
    cluster = Cluster(args.slots, args.groups, nodes, args.gpus, policy)
    settings = ReplaySettings(cluster, planner=args.planner, interval=args.interval, trigger=args.trigger,
                              utilization_threshold=args.threshold, max_moves=args.max_moves,
                              layers_per_chunk=args.layers_per_chunk, packer=args.packer)
    problem = settings.problem(num_logical)
    if problem:
        raise ValueError(problem)
    result = replay(trace, settings)
    baseline = None
    if args.planner != "last":
        baseline = replay(trace, ReplaySettings(cluster, planner="last", interval=args.interval,
                                                packer=args.packer))
    print(f"{num_windows} windows of {num_layers} layers x {num_logical} experts; {args.slots} slots on "
          f"{args.gpus} GPUs, {policy} policy; planner {make_planner(args.planner, cluster, args.packer).name}")
    print(f"served balancedness {result.mean_balancedness:.4f} (mean over windows 1..{num_windows - 1})"
          + (f"; the last-window plan {baseline.mean_balancedness:.4f}" if baseline else ""))
    print(f"{result.replans} plans, {result.moved_fraction:.1%} of the slots moved per re-plan, "
          f"{result.gb_per_hour(args.window_seconds):.1f} GB an hour at {args.window_seconds:g} s a window")
    flags = engine_flags(settings, args.window_passes, num_logical)
    print(f"SGLang: {flags.sglang_command}")
    print(f"vLLM: {flags.vllm_command}")
    for note in flags.notes:
        print(f"note: {note}")
    if args.plans_out:
        np.save(args.plans_out, result.plans.numpy().astype(np.int64))
        print(f"written: {args.plans_out}")
    if args.json:
        summary = result.summary(args.window_seconds)
        summary["trace"] = {"path": args.trace, "windows": num_windows, "layers": num_layers, "experts": num_logical,
                            "rows_per_window": args.window}
        summary["last_window_balancedness"] = baseline.mean_balancedness if baseline else result.mean_balancedness
        summary["gain_over_last_window"] = summary["mean_balancedness"] - summary["last_window_balancedness"]
        summary["engine_flags"] = {"sglang": flags.sglang_command, "vllm_eplb_config": flags.vllm_eplb_config,
                                   "trtllm_yaml": flags.trtllm_yaml, "notes": flags.notes}
        Path(args.json).write_text(json.dumps(summary, indent=2))
        print(f"written: {args.json}")
    return 0
