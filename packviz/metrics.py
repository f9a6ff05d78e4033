"""Lower bounds and balance metrics of a placement, per layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def lower_bounds(weight: torch.Tensor, num_packs: int) -> torch.Tensor:
    """Every bound of FACTS' family per layer: [L, k+1] as L0, L1, L_1 .. L_{k-1}.

    With w1 >= .. >= wn, S the total and k = n/m:
    L0 = S/m; L1 = w1 + the k-1 smallest; and for t = 1..k-1 some pack holds
    t+1 of the t*m+1 heaviest, so L_t = w_(tm-t+1) + .. + w_(tm+1) + the k-t-1
    smallest.
    """
    weight = torch.as_tensor(weight, dtype=torch.float64)
    if weight.dim() == 1:
        weight = weight.unsqueeze(0)
    _num_layers, num_items = weight.shape
    per_pack = num_items // num_packs
    descending = torch.sort(weight, dim=1, descending=True).values
    prefix = torch.nn.functional.pad(descending.cumsum(dim=1), (1, 0))  # prefix[j]: j heaviest
    total = prefix[:, -1]

    def smallest(count: int) -> torch.Tensor:
        return total - prefix[:, num_items - count]

    bounds = [total / num_packs, descending[:, 0] + smallest(per_pack - 1)]
    for t in range(1, per_pack):
        # positions tm-t+1 .. tm+1 (1-based) are indices tm-t .. tm (0-based)
        top = prefix[:, t * num_packs + 1] - prefix[:, t * num_packs - t]
        bounds.append(top + smallest(per_pack - t - 1))
    return torch.stack(bounds, dim=1)


def lower_bound(weight: torch.Tensor, num_packs: int) -> torch.Tensor:
    """The best of ``lower_bounds`` per layer: [L]."""
    return lower_bounds(weight, num_packs).amax(dim=1)


@dataclass(frozen=True)
class LayerMetrics:
    """Per-layer balance of a placement; every field is a [L] float64 tensor."""

    max_load: torch.Tensor
    min_load: torch.Tensor
    mean_load: torch.Tensor
    spread: torch.Tensor
    imbalance: torch.Tensor
    balancedness: torch.Tensor
    lower_bound: torch.Tensor
    gap_to_lower_bound: torch.Tensor

    def rows(self) -> list[dict[str, float]]:
        names = list(self.__dataclass_fields__)
        columns = [getattr(self, name).tolist() for name in names]
        return [
            {"layer": layer, **dict(zip(names, values))}
            for layer, values in enumerate(zip(*columns))
        ]


def layer_metrics(pack_loads: torch.Tensor, weight: torch.Tensor) -> LayerMetrics:
    """Metrics of pack loads [L, m] for the loads [L, n] that were packed."""
    pack_loads = pack_loads.to(torch.float64)
    num_packs = pack_loads.shape[1]
    max_load = pack_loads.amax(dim=1)
    min_load = pack_loads.amin(dim=1)
    mean_load = weight.to(torch.float64).sum(dim=1) / num_packs
    bound = lower_bound(weight, num_packs)
    return LayerMetrics(
        max_load=max_load,
        min_load=min_load,
        mean_load=mean_load,
        spread=max_load - min_load,
        imbalance=_ratio(max_load, mean_load),
        balancedness=_ratio(mean_load, max_load),
        lower_bound=bound,
        gap_to_lower_bound=_ratio(max_load, bound) - 1.0,
    )


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # An all-zero layer is perfectly balanced: 0/0 counts as 1.
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.ones_like(numerator))
