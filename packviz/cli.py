"""``python -m packviz pack|rebalance|replay|convert|generate``: the packer, EPLB placement and its replay over a
trace, engine formats and generators (load matrices and traffic traces) from a shell."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from packviz.cli_convert import add_convert_parser, convert_command
from packviz.cli_rebalance import add_rebalance_parser, rebalance_command
from packviz.cli_replay import add_replay_parser, replay_command
from packviz.config import DEFAULT_PRESET, OPTION_NAMES, PRESETS, PackerConfig, resolve_config
from packviz.data.generators import GENERATORS, generate
from packviz.data.loaders import SUFFIXES, read_loads
from packviz.data.samples import make_dataset
from packviz.data.traffic import drifting_traffic
from packviz.io.export import placement_csv, sglang_json, summary_table
from packviz.limits import check_fits
from packviz.packer import pack
from packviz.validate import check_num_packs, slot_counts_hint

TRAFFIC_KINDS = {
    "prefill-traffic": "[windows, layers, items] prefill traffic whose statistics match a real DeepSeek-V2-Lite trace",
    "decode-traffic": "[windows, layers, items] decode-sized windows with a drifting popularity",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _option_type(field: dataclasses.Field) -> Any:
    hint = str(field.type)
    if "bool" in hint:
        return _boolean
    if "int | None" in hint:
        return lambda text: None if text.lower() in {"none", "off"} else int(text)
    if "int" in hint:
        return int
    if "float" in hint:
        return float
    return str


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="packviz", description="Balanced packing of MoE expert loads.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    packing = commands.add_parser(
        "pack",
        help="pack every layer of a load file",
        description=(
            "Pack each layer (row) of LOADS into --packs packs of equal item count, write the placement "
            "CSV (layer,item,pack,rank_in_pack,load) and print a per-layer table. "
            f"LOADS may be {', '.join(SUFFIXES)}."
        ),
    )
    packing.add_argument("loads", help="load file: one row per layer, one column per item")
    packing.add_argument("--packs", type=int, required=True, help="number of packs (GPUs); must divide the items")
    packing.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                         help=f"packer preset (default {DEFAULT_PRESET}): "
                         + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))
    packing.add_argument("--out", help="write the placement CSV here (default: not written)")
    packing.add_argument("--replicate", type=int, metavar="SLOTS",
                         help="the loads are per expert: replicate the hottest into SLOTS slots first (EPLB's "
                              "replication); the CSV then names each slot's expert and replica")
    packing.add_argument("--sglang", metavar="FILE",
                         help="also write SGLang's --init-expert-location JSON (physical_to_logical_map) here")
    packing.add_argument("--array", help="which array of a multi-array .npz to use")
    packing.add_argument("--max-memory", type=float, metavar="GB",
                         help="refuse, saying what fits, when the packing is estimated to need more working memory "
                              "than GB (default: no check)")
    for field in dataclasses.fields(PackerConfig):
        choices = get_args(field.type) if "Literal" in str(field.type) else None
        packing.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=_option_type(field),
            default=None,
            metavar="VALUE",
            help=f"override the preset's {field.name}"
            + (f" ({', '.join(choices)})" if choices else "")
            + (f" (default {field.default})" if field.name == "seed" else ""),
        )

    add_rebalance_parser(commands)
    add_replay_parser(commands)
    add_convert_parser(commands)

    making = commands.add_parser("generate", help="write a generated load matrix",
                                 description="Write a seeded, generated [layers, items] load matrix, or a "
                                             "[windows, layers, items] traffic trace (--windows).")
    making.add_argument("kind", choices=[*GENERATORS, *TRAFFIC_KINDS],
                        help="; ".join([*(f"{g.name}: {g.description}" for g in GENERATORS.values()),
                                        *(f"{k}: {d}" for k, d in TRAFFIC_KINDS.items())]))
    making.add_argument("--windows", type=int, default=None,
                        help="windows of a traffic trace (prefill-traffic, decode-traffic); the first "
                             "--param dense_layers=N layers (default 1) stay all-zero")
    making.add_argument("--layers", type=int, required=True)
    making.add_argument("--items", type=int, required=True)
    making.add_argument("--seed", type=int, default=0)
    making.add_argument("--real", action="store_true", help="real-valued loads instead of whole token counts")
    making.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a generator parameter, e.g. --param skew=1.5 (repeatable)")
    making.add_argument("--out", required=True, help="output file: .csv, .npy, .npz, .pt or .json")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "pack":
            return _pack(args)
        if args.command == "rebalance":
            return rebalance_command(args)
        if args.command == "replay":
            return replay_command(args)
        if args.command == "convert":
            return convert_command(args)
        return _generate(args)
    except (_UsageError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _pack(args: argparse.Namespace) -> int:
    loaded = read_loads(args.loads, array_name=args.array)
    if args.replicate is not None:
        _check_replicate(args.replicate, loaded.shape[1], args.packs)
    data = make_dataset(loaded, replicate_into=args.replicate)
    options = {name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not None}
    seed = options.pop("seed", 0)
    if args.max_memory is not None:
        layers, items = data.weight.shape
        check_num_packs(items, args.packs)
        problem = check_fits(layers, items, args.packs, resolve_config(args.preset, seed=seed, **options),
                             budget_bytes=int(args.max_memory * 1024**3))
        if problem:
            raise ValueError(problem)
    result = pack(data.weight, args.packs, args.preset, seed=seed, **options)
    if args.out:
        Path(args.out).write_text(placement_csv(result, data.slots))
    if args.sglang:
        Path(args.sglang).write_text(sglang_json(result, data.slots))
    print(f"{data.description}")
    print(f"preset {args.preset}, {args.packs} packs, seed {seed}, device {result.device}, "
          f"{result.elapsed_s * 1000:.1f} ms")
    print(f"{'layer':>6} {'max/mean':>10} {'gap to LB':>10}")
    rows = summary_table(result)
    for row in rows[:-1]:
        print(f"{row['layer']:>6} {row['imbalance']:>10.5f} {row['gap_to_lower_bound'] * 100:>9.4f}%")
    total = rows[-1]
    print(f"{'mean':>6} {total['imbalance']:>10.5f} {total['gap_to_lower_bound'] * 100:>9.4f}%"
          f"   (max gap {total['max_gap_to_lower_bound'] * 100:.4f}%)")
    for path in (args.out, args.sglang):
        if path:
            print(f"written: {path}")
    return 0


def _check_replicate(num_slots: int, num_experts: int, num_packs: int) -> None:
    """--replicate's slot count, with the slot counts that would work for these experts and packs."""
    if num_packs < 1:
        return  # check_num_packs says what is wrong with the pack count
    if num_slots < num_experts:
        raise ValueError(f"--replicate {num_slots}: {num_slots} slots are fewer than the {num_experts} experts "
                         f"({slot_counts_hint(num_slots, num_experts, num_packs, 'pack')}).")
    if num_slots % num_packs:
        raise ValueError(f"--replicate {num_slots}: {num_slots} slots do not split evenly into {num_packs} packs "
                         f"({slot_counts_hint(num_slots, num_experts, num_packs, 'pack')}).")


def _generate(args: argparse.Namespace) -> int:
    parameters: dict[str, float] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--param takes NAME=VALUE, got {item!r}")
        try:
            parameters[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param {key}: {value!r} is not a number") from None
    if args.kind in TRAFFIC_KINDS:
        return _generate_traffic(args, parameters)
    weight = generate(args.kind, args.layers, args.items, seed=args.seed, integer=not args.real, **parameters)
    write_matrix(weight, Path(args.out))
    print(f"wrote {args.layers} x {args.items} {args.kind} loads to {args.out}")
    return 0


def _generate_traffic(args: argparse.Namespace, parameters: dict[str, float]) -> int:
    if args.windows is None:
        raise ValueError(f"{args.kind} needs --windows N: how many windows of traffic to write")
    path = Path(args.out)
    if path.suffix.lower() not in (".npy", ".pt"):
        raise ValueError(f"a traffic trace [windows, layers, items] is written as .npy or .pt, not "
                         f"{path.suffix or 'a file without a suffix'}")
    dense = parameters.pop("dense_layers", 1.0)
    if dense != int(dense):
        raise ValueError(f"--param dense_layers={dense:g} is not a whole number")
    phase = args.kind.removesuffix("-traffic")
    loads = drifting_traffic(args.windows, args.layers, args.items, dense_layers=int(dense), phase=phase,
                             seed=args.seed, **parameters)
    if path.suffix.lower() == ".npy":
        np.save(path, loads.numpy())
    else:
        torch.save(loads, path)
    print(f"wrote {args.windows} windows x {args.layers} layers x {args.items} experts of {phase} traffic to {path}")
    return 0


def write_matrix(weight: torch.Tensor, path: Path) -> None:
    """Write [layers, items] loads as .csv, .npy, .npz, .pt or .json (by the suffix)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        integer = bool((weight == weight.round()).all())
        lines = [",".join(f"item{i}" for i in range(weight.shape[1]))]
        for row in weight.tolist():
            lines.append(",".join(str(int(v)) if integer else repr(v) for v in row))
        path.write_text("\n".join(lines) + "\n")
    elif suffix == ".npy":
        np.save(path, weight.numpy())
    elif suffix == ".pt":
        torch.save(weight, path)
    elif suffix == ".npz":
        np.savez(path, loads=weight.numpy())
    elif suffix == ".json":
        integer = bool((weight == weight.round()).all())
        rows = weight.to(torch.int64).tolist() if integer else weight.tolist()
        path.write_text(json.dumps(rows))
    else:
        raise ValueError(f"cannot write {suffix or 'a file without a suffix'}; use .csv, .npy, .npz, .pt or .json")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
