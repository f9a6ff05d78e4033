"""Checks on what the packer is given, with messages that say what to change."""

from __future__ import annotations

import math

import torch


def valid_pack_counts(num_items: int) -> list[int]:
    """Pack counts that divide ``num_items`` evenly."""
    return [m for m in range(1, num_items + 1) if num_items % m == 0]


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
