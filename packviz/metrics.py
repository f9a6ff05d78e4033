"""Lower bounds and balance metrics of a placement, per layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _as_matrix(weight: torch.Tensor) -> torch.Tensor:
    weight = torch.as_tensor(weight, dtype=torch.float64)
    return weight.unsqueeze(0) if weight.dim() == 1 else weight


def _heaviest_prefix(weight: torch.Tensor) -> torch.Tensor:
    """[L, n+1]: entry j is the sum of each layer's j heaviest loads."""
    descending = torch.sort(weight, dim=1, descending=True).values
    return torch.nn.functional.pad(descending.cumsum(dim=1), (1, 0))


def lower_bounds(weight: torch.Tensor, num_packs: int) -> torch.Tensor:
    """Every bound of FACTS' family per layer: [L, k+1] as L0, L1, L_1 .. L_{k-1}.

    With w1 >= .. >= wn, S the total and k = n/m:
    L0 = S/m; L1 = w1 + the k-1 smallest; and for t = 1..k-1 some pack holds
    t+1 of the t*m+1 heaviest, so L_t = w_(tm-t+1) + .. + w_(tm+1) + the k-t-1
    smallest.
    """
    return _family_bounds(_heaviest_prefix(_as_matrix(weight)), num_packs)


def _family_bounds(prefix: torch.Tensor, num_packs: int) -> torch.Tensor:
    num_items = prefix.shape[1] - 1
    per_pack = num_items // num_packs
    total = prefix[:, -1]

    def smallest(count: int) -> torch.Tensor:
        return total - prefix[:, num_items - count]

    bounds = [total / num_packs, prefix[:, 1] + smallest(per_pack - 1)]
    for t in range(1, per_pack):
        # positions tm-t+1 .. tm+1 (1-based) are indices tm-t .. tm (0-based)
        top = prefix[:, t * num_packs + 1] - prefix[:, t * num_packs - t]
        bounds.append(top + smallest(per_pack - t - 1))
    return torch.stack(bounds, dim=1)


def crowding_bound(weight: torch.Tensor, num_packs: int) -> torch.Tensor:
    """A bound for many heavy, near-equal items (replicas of hot experts): [L].

    Take the T = t*m + j heaviest items (t = 1..k-1, j = 1..m). The packs that
    hold t+1 or more of them, say d of them, hold at least t*d + max(j, d) of
    those items, and their other slots hold at least the smallest remaining loads,
    so the heaviest of those d packs carries at least their total / d. The
    true d is unknown, so the bound for (t, j) is the smallest over d = 1..m.
    With j = 1 this is FACTS' L_t; larger j catches "38 replicas over 32
    packs force 6 packs to hold two".
    """
    return _crowding_bound(_heaviest_prefix(_as_matrix(weight)), num_packs)


def _crowding_bound(prefix: torch.Tensor, num_packs: int) -> torch.Tensor:
    num_layers, num_items = prefix.shape[0], prefix.shape[1] - 1
    per_pack = num_items // num_packs
    total = prefix[:, -1:]
    best = torch.zeros(num_layers, dtype=torch.float64, device=prefix.device)
    j = torch.arange(1, num_packs + 1, device=prefix.device).view(-1, 1)
    d = torch.arange(1, num_packs + 1, device=prefix.device).view(1, -1)
    for t in range(1, per_pack):
        top = t * num_packs + j  # [J, 1]
        usable = top <= num_items
        # top items inside the crowded packs: the others hold at most t each,
        # and each crowded pack holds at least t+1
        in_crowded = t * d + torch.maximum(j, d)
        slots_left = d * per_pack - in_crowded
        feasible = (slots_left >= 0) & usable & (in_crowded <= top)
        top_clamped = top.clamp(max=num_items).expand(num_packs, num_packs)
        count = in_crowded.clamp(max=num_items)
        lightest_top = prefix[:, top_clamped] - prefix[:, (top_clamped - count).clamp(min=0)]
        rest = slots_left.clamp(min=0).minimum(num_items - top_clamped)
        smallest = total.unsqueeze(2) - prefix[:, num_items - rest]
        per_d = (lightest_top + smallest) / d
        per_d = torch.where(feasible, per_d, torch.full_like(per_d, float("inf")))
        per_j = per_d.amin(dim=2)  # the unknown d: the weakest case
        per_j = torch.where(usable.view(1, -1), per_j, torch.zeros_like(per_j))
        best = torch.maximum(best, per_j.amax(dim=1))
    return best


def lower_bound(weight: torch.Tensor, num_packs: int) -> torch.Tensor:
    """The best of ``lower_bounds`` and ``crowding_bound`` per layer: [L]. For
    a layer of whole numbers every pack load is whole too, so it rounds up."""
    weight = _as_matrix(weight)
    prefix = _heaviest_prefix(weight)
    bound = torch.maximum(_family_bounds(prefix, num_packs).amax(dim=1), _crowding_bound(prefix, num_packs))
    whole = (weight == weight.round()).all(dim=1)
    # the slack keeps a bound that is whole but computed a hair above it from rounding up
    rounded = torch.ceil(bound - 1e-9 * bound.abs().clamp_min(1.0))
    return torch.where(whole, torch.maximum(rounded, bound.floor()), bound)


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
