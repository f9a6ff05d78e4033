"""SGLang's ``--init-expert-location`` file, both ways.

What SGLang reads (``python/sglang/srt/eplb/expert_location.py``, ``compute_initial_expert_location_metadata``):
a ``.json`` or ``.pt`` file (``torch.load(weights_only=True)``) or inline JSON holding a dict with either

- ``physical_to_logical_map`` [num_layers, num_physical]: the placement itself. ``num_layers`` is the
  model's ``num_hidden_layers`` (``ModelConfigForExpertLocation``), dense layers included: an MoE layer
  looks its map up by its own layer number, so DeepSeek-V3's file has 61 rows, of which rows 0-2 belong
  to dense layers that never route. Each row's ids must lie in 0..num_logical-1, and with the ``static``
  dispatch every row must hold every expert (it picks a replica of each expert for each rank), so a
  dense row here is SGLang's own trivial map, slot ``p`` holding expert ``p % num_logical``;
- ``logical_count`` [num_layers, num_logical] or [steps, num_layers, num_logical]: expert loads (the
  recorder's statistics), on which SGLang runs EPLB at start-up. That is not a placement.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import torch

from packviz.io.engines.base import EnginePlacement, PlanFileError, consecutive_ids, int_rows, ranges

NAME = "sglang"
SUFFIX = ".json"
TITLE = "SGLang --init-expert-location JSON (physical_to_logical_map)"


class StatisticsFileError(PlanFileError):
    """The file holds SGLang's ``logical_count`` loads, not a placement."""


def trivial_row(num_replicas: int, num_logical: int) -> torch.Tensor:
    """[num_replicas]: SGLang's trivial map, slot p holding expert p % num_logical (its rows for dense layers)."""
    return torch.arange(num_replicas, dtype=torch.int64) % num_logical


def full_map(phy2log: torch.Tensor, layer_ids: Sequence[int], num_layers: int) -> torch.Tensor:
    """[num_layers, num_replicas]: the MoE rows at their layer numbers, the trivial map in every other row."""
    moe_layers, num_replicas = phy2log.shape
    if len(set(layer_ids)) != len(layer_ids) or min(layer_ids) < 0:
        raise ValueError(f"the MoE layers' numbers must be distinct and at least 0, got {list(layer_ids)[:8]}")
    if max(layer_ids) >= num_layers:
        raise ValueError(f"the model's {num_layers} layers end before MoE layer {max(layer_ids)}: "
                         f"{moe_layers} MoE layers from layer {layer_ids[0]} need at least {max(layer_ids) + 1}")
    num_logical = int(phy2log.max()) + 1
    table = trivial_row(num_replicas, num_logical).repeat(num_layers, 1)
    table[list(layer_ids)] = phy2log.cpu()
    return table


def sglang_json(phy2log: torch.Tensor, *, first_layer: int = 0, num_layers: int | None = None) -> str:
    """SGLang's ``--init-expert-location`` file holding the plan, one row per model layer.

    phy2log: [moe_layers, num_replicas], the model's MoE layers first_layer..first_layer+moe_layers-1.
    num_layers: the model's layer count (DeepSeek-V3: 61); None: first_layer + moe_layers. Rows of the
        dense layers (before first_layer, and from first_layer + moe_layers on) hold SGLang's trivial map.
    With the defaults the file holds phy2log's rows alone.
    """
    ids = consecutive_ids(first_layer, phy2log.shape[0])
    total = ids[-1] + 1 if num_layers is None else num_layers
    return json.dumps({"physical_to_logical_map": full_map(phy2log, ids, total).tolist()})


def sglang_logical_count_json(weight: torch.Tensor) -> str:
    """SGLang's ``--init-expert-location`` file holding the loads [layers, num_logical]
    (or [steps, layers, num_logical]); SGLang runs EPLB on them at start-up."""
    weight = weight.cpu().to(torch.float64)
    values = weight.to(torch.int64).tolist() if bool((weight == weight.round()).all()) else weight.tolist()
    return json.dumps({"logical_count": values})


def read_sglang_json(text: str, name: str = "SGLang JSON") -> dict[str, torch.Tensor]:
    """``{"physical_to_logical_map": [layers, slots] int64}`` or ``{"logical_count": float64 loads}``."""
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanFileError(f"{name}: not valid JSON: {error.msg} at line {error.lineno}") from None
    return _from_dict(content, name)


def _from_dict(content: object, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(content, dict):
        raise PlanFileError(f"{name}: expected an object with physical_to_logical_map or logical_count")
    if "physical_to_logical_map" in content:
        rows = content["physical_to_logical_map"]
        if isinstance(rows, torch.Tensor):
            rows = _tensor_rows(rows, f"{name}: physical_to_logical_map")
        return {"physical_to_logical_map": int_rows(rows, f"{name}: physical_to_logical_map")}
    if "logical_count" in content:
        try:
            values = torch.as_tensor(content["logical_count"], dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise PlanFileError(f"{name}: logical_count is not a rectangular array of numbers") from None
        if values.dim() not in (2, 3):
            raise PlanFileError(f"{name}: logical_count has {values.dim()} dimensions; expected 2 or 3")
        return {"logical_count": values}
    raise PlanFileError(f"{name}: holds neither physical_to_logical_map nor logical_count; its keys: "
                        f"{', '.join(map(str, list(content)[:10]))}")


def _tensor_rows(table: torch.Tensor, where: str) -> list:
    if table.is_floating_point() or table.is_complex() or table.dtype == torch.bool:
        raise PlanFileError(f"{where}: holds {table.dtype} values, not expert ids")
    return table.tolist()


def dense_rows(table: torch.Tensor) -> list[int]:
    """Rows of [num_layers, num_replicas] that hold SGLang's trivial map while some other row does not.

    Those are what packviz (and SGLang's ``trivial`` location) writes for dense layers. When every row is
    trivial the plan itself is trivial, and no row is taken for a dense layer.
    """
    trivial = trivial_row(table.shape[1], int(table.max()) + 1)
    same = (table == trivial).all(dim=1)
    if bool(same.all()):
        return []
    return [int(i) for i in same.nonzero().flatten()]


def read(data: bytes, name: str) -> EnginePlacement:
    """The placement in an SGLang ``.json`` or ``.pt`` file; rows of dense layers recognised and left out.

    Raises StatisticsFileError for a ``logical_count`` file, PlanFileError for anything else unreadable.
    """
    if data[:4] == b"PK\x03\x04":
        try:
            content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a refused or broken archive
            raise PlanFileError(f"{name}: a zip archive that torch cannot read as plain tensors "
                                f"({type(error).__name__}); packviz never unpickles uploaded code") from None
        found = _from_dict(content, name)
    else:
        try:
            found = read_sglang_json(data.decode("utf-8-sig"), name)
        except UnicodeDecodeError:
            raise PlanFileError(f"{name}: neither UTF-8 JSON nor a torch file") from None
    if "logical_count" in found:
        shape = " x ".join(map(str, found["logical_count"].shape))
        raise StatisticsFileError(
            f"{name}: holds SGLang's logical_count statistics ({shape} expert loads), not a plan "
            f"(physical_to_logical_map); make a plan from them with `python -m packviz rebalance {name} ...`")
    table = found["physical_to_logical_map"]
    dense = dense_rows(table)
    moe = [row for row in range(table.shape[0]) if row not in set(dense)]
    notes = ()
    if dense:
        notes = (f"rows {ranges(dense)} of {table.shape[0]} hold SGLang's trivial map (slot p: expert p % "
                 f"{int(table.max()) + 1}), read as dense layers; the MoE layers are {ranges(moe)}",)
    return EnginePlacement(table[moe], tuple(moe), num_layers=int(table.shape[0]), notes=notes)


def write(placement: EnginePlacement, name: str = "SGLang map") -> str:
    return json.dumps({"physical_to_logical_map": full_map(placement.phy2log, placement.layer_ids,
                                                           placement.model_layers).tolist()})

