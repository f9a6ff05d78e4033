"""What every engine's placement file holds once read, and the checks every one of them passes.

An :class:`EnginePlacement` is the MoE layers' ``phy2log`` [moe_layers, num_replicas] (slot ``p`` on GPU
``p // (num_replicas / num_gpus)``, as in DeepSeek's EPLB and SGLang) plus what a format carries beside
it: the model's number of each MoE layer (TensorRT-LLM's keys; SGLang's row index), the model's layer
count (SGLang's map has a row for every layer, dense ones included), and the cluster shape (the placement
CSV's nodes and GPUs, vllm-ascend's devices).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

MAX_IDS = 10_000_000


class PlanFileError(ValueError):
    """A plan file that cannot be read or written; the message says what and where."""


@dataclass(frozen=True)
class EnginePlacement:
    """A placement as an engine's file holds it.

    phy2log: [moe_layers, num_replicas] int64 logical expert ids, one row per MoE layer.
    layer_ids: the model's number of each row (DeepSeek-V3: 3..60); 0.. when the file does not say.
    num_layers: the model's layer count, dense layers included, where the file says it (SGLang's rows).
    num_gpus, num_nodes: the cluster shape, where the file says it.
    shared: the file holds one map for every MoE layer (vLLM's single-list form); phy2log has one row.
    notes: what the reader recognised, in sentences for people (dense rows, a shared map).
    """

    phy2log: torch.Tensor
    layer_ids: tuple[int, ...] = ()
    num_layers: int | None = None
    num_gpus: int | None = None
    num_nodes: int | None = None
    shared: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.layer_ids:
            object.__setattr__(self, "layer_ids", tuple(range(self.phy2log.shape[0])))
        if len(self.layer_ids) != self.phy2log.shape[0]:
            raise ValueError(f"{len(self.layer_ids)} layer numbers for {self.phy2log.shape[0]} rows")

    @property
    def moe_layers(self) -> int:
        return int(self.phy2log.shape[0])

    @property
    def num_replicas(self) -> int:
        return int(self.phy2log.shape[1])

    @property
    def num_logical(self) -> int:
        """Experts named by the plan: every layer holds each of 0..num_logical-1 (see :func:`check_placement`)."""
        return int(self.phy2log.max()) + 1

    @property
    def first_layer(self) -> int:
        return self.layer_ids[0]

    @property
    def model_layers(self) -> int:
        """The model's layer count: the file's, or one past the last MoE layer."""
        return self.num_layers if self.num_layers is not None else self.layer_ids[-1] + 1

    def describe(self) -> str:
        """One line for people: layers, slots, experts and what the file carries."""
        text = f"{self.moe_layers} MoE layer{'s' if self.moe_layers != 1 else ''} (numbered {ranges(self.layer_ids)}"
        text += f" of {self.num_layers})" if self.num_layers is not None else ")"
        text += f" x {self.num_replicas} slots, {self.num_logical} experts"
        if self.num_gpus is not None:
            text += f", {self.num_gpus} GPUs"
        if self.num_nodes is not None:
            text += f" on {self.num_nodes} node{'s' if self.num_nodes != 1 else ''}"
        return text


def consecutive_ids(first_layer: int, count: int) -> tuple[int, ...]:
    if isinstance(first_layer, bool) or not isinstance(first_layer, int) or first_layer < 0:
        raise ValueError(f"the first MoE layer's number must be a whole number of at least 0, not {first_layer!r}")
    return tuple(range(first_layer, first_layer + count))


def int_rows(rows: object, where: str, what: str = "layer") -> torch.Tensor:
    """[rows, width] int64 from a list of equally long lists of non-negative whole numbers, or one sentence why not."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise PlanFileError(f"{where}: expected a list of rows of expert ids")
    width = len(rows[0])
    if width == 0:
        raise PlanFileError(f"{where}: {what} 0 lists no slots")
    if len(rows) * width > MAX_IDS:
        # YAML aliases can make a small file name millions of ids
        raise PlanFileError(f"{where}: {len(rows)} {what}s x {width} slots is more than the {MAX_IDS:,} ids "
                            "packviz reads from a plan file")
    for index, row in enumerate(rows):
        if len(row) != width:
            raise PlanFileError(f"{where}: {what} {index} has {len(row)} slots, {what} 0 has {width}")
        for slot, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PlanFileError(f"{where}: {what} {index}, slot {slot}: {value!r} is not an expert id")
    return torch.tensor(rows, dtype=torch.int64)


def check_placement(phy2log: torch.Tensor, name: str, layer_ids: Sequence[int] | None = None) -> None:
    """Every engine's own rule: every MoE layer gives each expert 0..E-1 (E: one past the largest id) a slot.

    Raises PlanFileError naming the first layer (by the model's number where known) and expert without one.
    """
    if phy2log.dim() != 2 or phy2log.numel() == 0:
        raise PlanFileError(f"{name}: expected [layers, slots] expert ids, got shape {tuple(phy2log.shape)}")
    if bool((phy2log < 0).any()):
        layer, slot = (int(v) for v in (phy2log < 0).nonzero()[0])
        raise PlanFileError(f"{name}: layer {layer}, slot {slot}: {int(phy2log[layer, slot])} is not an expert id")
    num_logical = int(phy2log.max()) + 1
    present = torch.zeros(phy2log.shape[0], num_logical, dtype=torch.bool).scatter_(1, phy2log, True)
    if not bool(present.all()):
        row, expert = (int(v) for v in (~present).nonzero()[0])
        layer = layer_ids[row] if layer_ids is not None else row
        raise PlanFileError(f"{name}: layer {layer} has no slot for expert {expert} (the plan names experts "
                            f"0-{num_logical - 1}, and every layer must hold each of them)")


def ranges(numbers: Sequence[int]) -> str:
    """'0-2, 5, 7-9' for [0, 1, 2, 5, 7, 8, 9] (sorted, distinct)."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)


def json_content(data: bytes, name: str) -> object:
    """The JSON document in ``data`` (a byte-order mark allowed), or PlanFileError naming the file and line."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise PlanFileError(f"{name}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise PlanFileError(f"{name}: not valid JSON: {error.msg} at line {error.lineno}") from None
