"""Checks on what the packer is given, with messages that say what to change."""

from __future__ import annotations

import math

import torch


def valid_pack_counts(num_items: int) -> list[int]:
    """Pack counts that divide ``num_items`` evenly."""
    return [m for m in range(1, num_items + 1) if num_items % m == 0]


def slot_counts_near(num_replicas: int, num_logical: int, num_gpus: int) -> list[int]:
    """The two slot counts nearest ``num_replicas`` that work on ``num_gpus``
    GPUs: multiples of the GPU count (every GPU the same number of slots), not
    below the number of experts (every expert a slot); ascending."""
    smallest = -(-num_logical // num_gpus) * num_gpus
    below = max(smallest, num_replicas // num_gpus * num_gpus)
    candidates = {below, below + num_gpus}
    if below > smallest:
        candidates.add(below - num_gpus)
    # of at most three neighbours, keep the two nearest (the lower one on a tie)
    return sorted(sorted(candidates, key=lambda count: (abs(count - num_replicas), count))[:2])


def slot_counts_hint(num_replicas: int, num_logical: int, num_gpus: int, gpu_word: str = "GPU") -> str:
    """E.g. "slot counts that work on 8 GPUs: 144 or 152" (``gpu_word="pack"``: "on 8 packs")."""
    near = slot_counts_near(num_replicas, num_logical, num_gpus)
    gpus = f"{num_gpus} {gpu_word}" + ("" if num_gpus == 1 else "s")
    return f"slot counts that work on {gpus}: {' or '.join(map(str, near))}"


def check_num_packs(num_items: int, num_packs: object) -> int:
    if not isinstance(num_packs, int) or isinstance(num_packs, bool):
        raise ValueError(f"num_packs must be a whole number, got {num_packs!r}")
    if num_packs < 1:
        raise ValueError(f"num_packs must be at least 1, got {num_packs}")
    if num_packs > num_items:
        raise ValueError(
            f"{num_packs} packs for {num_items} items: there must be at least one item per pack; "
            f"pack counts that work: {_list(valid_pack_counts(num_items))}"
        )
    if num_items % num_packs:
        raise ValueError(
            f"{num_items} items do not split evenly into {num_packs} packs; "
            f"pack counts that work: {_list(valid_pack_counts(num_items))}"
        )
    return num_packs


def as_weight_matrix(weight: object) -> torch.Tensor:
    """``weight`` as a float64 [layers, items] tensor; a 1-D input is one layer."""
    if isinstance(weight, torch.Tensor):
        tensor = weight
    else:
        try:
            tensor = torch.as_tensor(weight)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"loads must be a numeric matrix: {error}") from None
    if tensor.dtype == torch.bool or tensor.is_complex() or not (
        tensor.is_floating_point() or tensor.dtype in _INTEGER_TYPES
    ):
        raise ValueError(f"loads must be real numbers, got dtype {tensor.dtype}")
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2:
        raise ValueError(
            f"loads must be [layers, items] (or one layer of items), got {tensor.dim()} dimensions "
            f"of shape {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        raise ValueError(f"loads are empty (shape {tuple(tensor.shape)})")
    tensor = tensor.to(torch.float64)
    bad = ~torch.isfinite(tensor) | (tensor < 0)
    if bool(bad.any()):
        layer, item = (int(v) for v in bad.nonzero()[0])
        value = float(tensor[layer, item])
        what = "not a number" if math.isnan(value) else "infinite" if math.isinf(value) else "negative"
        count = int(bad.sum())
        raise ValueError(
            f"loads must be finite and non-negative: layer {layer}, item {item} is {what} ({value})"
            + (f"; {count} bad values in all" if count > 1 else "")
        )
    return tensor


_INTEGER_TYPES = {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}


def _list(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


class PlacementError(RuntimeError):
    """The engine produced a placement that breaks the packing rules: a bug,
    never handed to the caller as a result."""


def check_placement(
    weight: torch.Tensor,
    pack_index: torch.Tensor,
    rank_in_pack: torch.Tensor,
    pack_loads: torch.Tensor,
    num_packs: int,
    label: str,
    layer_ids: list[int] | None = None,
) -> None:
    """Raise PlacementError unless every layer puts each item in exactly one
    (pack, rank) slot, every pack holds exactly n/m items and ``pack_loads``
    are the sums of their items' loads. O(layers x items) time and memory.

    weight, pack_index, rank_in_pack: [L, n]; pack_loads: [L, m].
    """
    num_layers, num_items = pack_index.shape
    per_pack = num_items // num_packs

    def fail(row: int, what: str) -> None:
        layer = layer_ids[row] if layer_ids is not None else row
        raise PlacementError(f"{label}: invalid placement of layer {layer}: {what}")

    if tuple(pack_loads.shape) != (num_layers, num_packs):
        fail(0, f"pack loads have shape {tuple(pack_loads.shape)}, expected {(num_layers, num_packs)}")
    out_of_range = (pack_index < 0) | (pack_index >= num_packs) | (rank_in_pack < 0) | (rank_in_pack >= per_pack)
    if bool(out_of_range.any()):
        row, item = (int(v) for v in out_of_range.nonzero()[0])
        fail(row, f"item {item} has pack {int(pack_index[row, item])}, rank {int(rank_in_pack[row, item])} "
                  f"(packs 0..{num_packs - 1}, ranks 0..{per_pack - 1})")
    slots = torch.sort(pack_index * per_pack + rank_in_pack, dim=1).values
    clash = slots != torch.arange(num_items, device=slots.device)
    if bool(clash.any()):
        row = int(clash.any(dim=1).nonzero()[0])
        counts = torch.bincount(pack_index[row], minlength=num_packs)
        crowded = (counts != per_pack).nonzero()
        what = (f"pack {int(crowded[0])} holds {int(counts[crowded[0]])} items, not {per_pack}" if crowded.numel()
                else "two items share one slot")
        fail(row, what)
    summed = torch.zeros(num_layers, num_packs, dtype=torch.float64, device=weight.device)
    summed.scatter_add_(1, pack_index, weight.to(torch.float64))
    # Sums in another order differ by rounding only: a few ulps of the layer's total.
    slack = 1e-9 * weight.abs().sum(dim=1, keepdim=True) + 1e-300
    wrong = (summed - pack_loads.to(torch.float64)).abs() > slack
    if bool(wrong.any()):
        row, pack_id = (int(v) for v in wrong.nonzero()[0])
        fail(row, f"pack {pack_id} reports load {float(pack_loads[row, pack_id])!r}, its items sum to "
                  f"{float(summed[row, pack_id])!r}")
