"""Every serving engine's placement file, read and written: one module per format, and the table of them.

==============  ======  ===========================================================================
format          suffix  what it holds
==============  ======  ===========================================================================
``sglang``      .json   ``physical_to_logical_map`` [model layers, slots]; dense layers' rows trivial
                        (also read from ``.pt``)
``trtllm``      .yaml   ``initial_global_assignments``: MoE layer number -> slots' experts
``vllm``        .json   one list of slots' experts per MoE layer, or one shared list (vLLM #49572)
``vllm-ascend`` .json   ``layer_list[i].device_list[d].device_expert``: MoE layer i, device d's slots
``csv``         .csv    ``layer,node,gpu,slot,expert,replica,load``: one row per slot
==============  ======  ===========================================================================

:func:`read_placement` tells the format from the suffix and the content and returns an
:class:`EnginePlacement`; ``FORMATS[name].write(placement)`` writes one. ``python -m packviz convert``
is these two with a read-back check between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from packviz.io.engines import csv, sglang, trtllm, vllm, vllm_ascend
from packviz.io.engines.base import EnginePlacement, PlanFileError, check_placement, json_content
from packviz.io.engines.sglang import StatisticsFileError


@dataclass(frozen=True)
class EngineFormat:
    """One format: its name (``--to``), file suffix, title for people, reader and writer."""

    name: str
    suffix: str
    title: str
    read: Callable[[bytes, str], EnginePlacement]
    write: Callable[[EnginePlacement, str], str]  # (placement, file name for messages) -> text
    carries: tuple[str, ...]  # the EnginePlacement fields the file keeps besides phy2log


FORMATS: dict[str, EngineFormat] = {
    module.NAME: EngineFormat(module.NAME, module.SUFFIX, module.TITLE, module.read, module.write, carries)
    for module, carries in (
        (sglang, ("layer_ids", "num_layers")),
        (trtllm, ("layer_ids",)),
        (vllm, ("shared",)),
        (vllm_ascend, ("num_gpus",)),
        (csv, ("num_gpus", "num_nodes")),
    )
}


def format_of(data: bytes, name: str) -> str:
    """Which format a file is, by its suffix and, for JSON, its content; PlanFileError when none fits."""
    suffix = Path(name).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return trtllm.NAME
    if suffix == ".csv":
        return csv.NAME
    if suffix in (".pt", ".pth"):
        return sglang.NAME
    if suffix == ".json":
        content = json_content(data, name)
        if vllm.looks_like(content):
            return vllm.NAME
        if vllm_ascend.looks_like(content):
            return vllm_ascend.NAME
        if isinstance(content, dict):
            return sglang.NAME
        raise PlanFileError(f"{name}: holds a {type(content).__name__}, not one of the engines' placements "
                            "(SGLang's object, vLLM's list or vllm-ascend's layer_list)")
    raise PlanFileError(f"{name}: unknown plan file type {suffix or '(none)'!r}; use .json (SGLang, vLLM or "
                        "vllm-ascend), .pt (SGLang), .csv (placement) or .yaml (TensorRT-LLM)")


def read_bytes(source: str | Path | bytes, name: str | None = None) -> tuple[bytes, str]:
    if isinstance(source, (str, Path)):
        name = name or Path(source).name
        try:
            return Path(source).read_bytes(), name
        except OSError as error:
            raise PlanFileError(f"{name}: cannot be read ({error.strerror or error})") from None
    return bytes(source), name or "plan"


def read_placement(source: str | Path | bytes, name: str | None = None) -> tuple[str, EnginePlacement]:
    """(format name, placement) of a plan file, from a path or from bytes with their file name.

    Raises StatisticsFileError for SGLang's logical_count statistics (loads, not a plan) and PlanFileError
    with one sentence for anything else that is not a placement.
    """
    data, name = read_bytes(source, name)
    if not data.strip():
        raise PlanFileError(f"{name}: the file is empty")
    kind = format_of(data, name)
    return kind, FORMATS[kind].read(data, name)


def read_plan(source: str | Path | bytes, name: str | None = None, *, layers: int | None = None) -> torch.Tensor:
    """phy2log [layers, num_replicas] from any engine's plan file.

    layers: the layer count the plan must match (the loads' rows). Where an SGLang map has rows for dense
        layers, all its rows are returned when that is ``layers``, else only the MoE rows. None: the MoE rows
        and, for SGLang, the dense rows too (the file's rows as written).
    """
    data, name = read_bytes(source, name)
    kind, placement = read_placement(data, name)
    if kind == sglang.NAME and placement.num_layers != placement.moe_layers and layers != placement.moe_layers:
        return sglang.full_map(placement.phy2log, placement.layer_ids, placement.model_layers)
    return placement.phy2log


__all__ = ["FORMATS", "EngineFormat", "EnginePlacement", "PlanFileError", "StatisticsFileError", "check_placement",
           "format_of", "read_placement", "read_plan"]
