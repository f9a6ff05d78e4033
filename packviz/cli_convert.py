"""``python -m packviz convert IN --to FORMAT OUT``: one engine's placement file as another's, read back first."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from packviz.io.engines import FORMATS, EnginePlacement, PlanFileError, check_placement, read_placement, sglang

FIELD_WORDS = {"layer_ids": "MoE layer numbers", "num_layers": "model layer count", "num_gpus": "GPU count",
               "num_nodes": "node count"}
OUTPUT_SUFFIXES = {"sglang": (".json",), "trtllm": (".yaml", ".yml"), "vllm": (".json",),
                   "vllm-ascend": (".json",), "csv": (".csv",)}


class RoundTripError(RuntimeError):
    """The text written does not read back as the placement it was written from (a bug, never the input's fault)."""


def add_convert_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="write one engine's placement file as another's",
        description=(
            "Read the placement in IN (SGLang .json/.pt physical_to_logical_map, TensorRT-LLM .yaml, vLLM or "
            "vllm-ascend .json, or the placement .csv; the format is told from the suffix and the content) and "
            "write it to OUT as FORMAT, after reading the written text back as the same map. "
            + "; ".join(f"{f.name}: {f.title}" for f in FORMATS.values()) + "."),
    )
    parser.add_argument("input", metavar="IN", help="the plan file to read")
    parser.add_argument("--to", required=True, choices=list(FORMATS), metavar="FORMAT",
                        help=f"the format to write: {', '.join(FORMATS)}")
    parser.add_argument("output", metavar="OUT", help="the file to write")
    parser.add_argument("--gpus", type=int, metavar="N",
                        help="GPUs (EP ranks, devices) in all, for csv and vllm-ascend (default: the input's, where it "
                             "says)")
    parser.add_argument("--nodes", type=int, metavar="N", help="nodes, for csv (default: the input's, else 1)")
    parser.add_argument("--first-layer", type=int, metavar="N",
                        help="the model's number of the first MoE layer (DeepSeek-V3: 3), for TensorRT-LLM's keys and "
                             "SGLang's rows (default: the input's, else 0)")
    parser.add_argument("--num-layers", type=int, metavar="N",
                        help="the model's layer count, dense layers included (DeepSeek-V3: 61), for SGLang's map "
                             "(default: the input's, else one past the last MoE layer)")
    parser.add_argument("--moe-layers", type=int, metavar="N",
                        help="for vLLM's single list shared by every MoE layer: how many MoE layers to write")


def _placement_for_output(placement: EnginePlacement, args: argparse.Namespace) -> EnginePlacement:
    changes: dict[str, object] = {}
    if placement.shared and args.moe_layers is not None:
        if args.moe_layers < 1:
            raise ValueError(f"--moe-layers must be at least 1, not {args.moe_layers}")
        changes.update(phy2log=placement.phy2log.repeat(args.moe_layers, 1),
                       layer_ids=tuple(range(args.moe_layers)), shared=False)
    elif args.moe_layers is not None:
        raise ValueError(f"--moe-layers repeats vLLM's single shared list; {args.input} holds one map per layer "
                         f"({placement.moe_layers} of them)")
    elif placement.shared and args.to != "vllm":
        raise ValueError(f"{args.input} holds one map shared by every MoE layer (vLLM's single list): say how "
                         "many MoE layers to write with --moe-layers N")
    rows = int(changes.get("phy2log", placement.phy2log).shape[0])
    if args.first_layer is not None:
        if args.first_layer < 0:
            raise ValueError(f"--first-layer must be 0 or more, not {args.first_layer}")
        changes["layer_ids"] = tuple(range(args.first_layer, args.first_layer + rows))
    if args.num_layers is not None:
        changes["num_layers"] = args.num_layers
    if args.gpus is not None:
        changes["num_gpus"] = args.gpus
    if args.nodes is not None:
        changes["num_nodes"] = args.nodes
    result = dataclasses.replace(placement, **changes, notes=())
    last = max(result.layer_ids)
    if result.num_layers is not None and result.num_layers <= last:
        raise ValueError(f"the model's {result.num_layers} layers end before MoE layer {last} "
                         f"({result.moe_layers} MoE layers from layer {result.first_layer}); give --num-layers or "
                         "--first-layer to match the model")
    return result


def _kept(fmt: str, placement: EnginePlacement) -> object:
    """What a file of format ``fmt`` keeps of a placement: two placements it keeps the same are the same file."""
    if fmt == "sglang":
        return sglang.full_map(placement.phy2log, placement.layer_ids, placement.model_layers).tolist()
    fields = {"phy2log": placement.phy2log.tolist()}
    for name in ("layer_ids", "num_gpus", "num_nodes", "shared"):
        if name in FORMATS[fmt].carries:
            fields[name] = getattr(placement, name)
    if "num_nodes" in FORMATS[fmt].carries and fields["num_nodes"] is None:
        fields["num_nodes"] = 1
    return fields


def convert(data: bytes, name: str,
            args: argparse.Namespace) -> tuple[str, EnginePlacement, str, EnginePlacement, EnginePlacement]:
    """(input format, input placement, text to write, placement written, placement read back from the text);
    ValueError with one sentence on bad input, RoundTripError where the text reads back as another map."""
    kind, placement = read_placement(data, name)
    check_placement(placement.phy2log, name, placement.layer_ids)
    wanted = _placement_for_output(placement, args)
    target = FORMATS[args.to]
    out_name = Path(args.output).name
    text = target.write(wanted, out_name)
    try:
        back = target.read(text.encode(), out_name)
    except PlanFileError as error:
        raise RoundTripError(f"the {args.to} text written for {out_name} does not read back: {error}") from None
    if _kept(args.to, back) != _kept(args.to, wanted):
        raise RoundTripError(f"the {args.to} text written for {out_name} reads back as another map")
    return kind, placement, text, wanted, back


def convert_command(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES[args.to]:
        raise ValueError(f"{args.output}: a {args.to} file is written as {' or '.join(OUTPUT_SUFFIXES[args.to])}, "
                         f"not {suffix or 'a name without a suffix'}")
    path = Path(args.input)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path.name}: cannot be read ({error.strerror or error})") from None
    try:
        kind, placement, text, wanted, back = convert(data, path.name, args)
    except RoundTripError as error:
        print(f"error: {error}; nothing written", file=sys.stderr)
        return 1
    print(f"read {args.input}: {FORMATS[kind].title}: {placement.describe()}")
    for note in placement.notes:
        print(f"  {note}")
    if kind != args.to:
        lost = [FIELD_WORDS[field] for field in FORMATS[kind].carries
                if field in FIELD_WORDS and field not in FORMATS[args.to].carries]
        if lost:
            print(f"  a {args.to} file keeps no {' or '.join(lost)}")
    Path(args.output).write_text(text)
    print(f"wrote {args.output}: {FORMATS[args.to].title}: {wanted.describe()}; read back as the same map")
    for note in back.notes:
        if note not in placement.notes:
            print(f"  {note}")
    return 0
