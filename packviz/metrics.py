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


# Elements of one block of the crowding bound's [layers, cases, d] grid: the grid
# is walked block by block, so its memory is fixed whatever L and m (beyond the
# prefix sums, and one layer's n cases when n alone exceeds a block).
CROWDING_BLOCK_ELEMENTS = 1 << 20
# Cases per layer computed over every d before any is skipped: the largest
# values at d = j often tie, and the case that attains the bound is among them.
_PROMISING_CASES = 8


def _crowding_bound(prefix: torch.Tensor, num_packs: int) -> torch.Tensor:
    """Each case (t, j) bounds by its minimum over d; the bound is the largest.

    The value at d = j (always feasible) is at least a case's minimum, so a
    case whose value there does not beat its layer's best so far cannot raise
    the bound and its other d are skipped: on real loads nearly every case is.
    Every value is computed by the same operations, whether a case is skipped or
    not, so the result is exactly that of the full [L, cases, m] grid.
    """
    num_layers, num_items = prefix.shape[0], prefix.shape[1] - 1
    per_pack = num_items // num_packs
    device = prefix.device
    best = torch.zeros(num_layers, dtype=torch.float64, device=device)
    if per_pack < 2:
        return best
    case = torch.arange((per_pack - 1) * num_packs, device=device)  # every (t, j), t-major
    t, j = 1 + case // num_packs, 1 + case % num_packs
    # With a non-finite sum, comparisons with NaN would skip cases that the grid counts.
    skipping = bool(torch.isfinite(prefix).all())
    layers_per_block = max(1, CROWDING_BLOCK_ELEMENTS // max(case.numel(), _PROMISING_CASES * num_packs))
    every_d = torch.arange(1, num_packs + 1, device=device).view(1, 1, -1)
    bands = _bands(num_packs, per_pack, device)
    for first in range(0, num_layers, layers_per_block):
        rows = prefix[first:first + layers_per_block]
        block_best = best[first:first + layers_per_block]
        if skipping:
            at_d_is_j = _case_bounds(rows, num_packs, t.view(1, -1, 1), j.view(1, -1, 1), j.view(1, -1, 1))
            # each layer's most promising cases, over every d
            promising = at_d_is_j.topk(min(_PROMISING_CASES, case.numel()), dim=1).indices
            exact = _case_bounds(rows, num_packs, t[promising].unsqueeze(2), j[promising].unsqueeze(2), every_d)
            torch.maximum(block_best, exact.amax(dim=1), out=block_best)
        for cases in bands:
            live = torch.arange(rows.shape[0], device=device)
            if skipping:
                live = live[at_d_is_j[:, cases].amax(dim=1) > block_best]
            _raise_by_cases(block_best, rows, live, num_packs, t[cases], j[cases])
    return best


def _bands(num_packs: int, per_pack: int, device: torch.device) -> list[torch.Tensor]:
    """The cases (t, j) cut into bands: narrow enough (m/32 values of j) that each
    band's range of feasible d is much shorter than m, wide enough (16K cells) to
    keep Python's per-band cost small when m is small, and one layer's band fits
    a block."""
    num_cases = (per_pack - 1) * num_packs
    width = max(1, min(CROWDING_BLOCK_ELEMENTS // num_packs, max(-(-num_packs // 32), (1 << 14) // num_packs)))
    return [torch.arange(first, min(first + width, num_cases), device=device) for first in range(0, num_cases, width)]


def _raise_by_cases(
    best: torch.Tensor, rows: torch.Tensor, live: torch.Tensor, num_packs: int, t: torch.Tensor, j: torch.Tensor
) -> None:
    """Raise ``best`` [B] at the ``live`` rows to the bounds of the cases (t, j) [C]."""
    if live.numel() == 0:
        return
    per_pack = (rows.shape[1] - 1) // num_packs
    # Only d in ceil(j / (k-t)) .. floor((t*m + j) / (t+1)) can be feasible
    # (d = j always is); the others give +inf, which the min over d ignores.
    d_first = max(1, int((-(-j // (per_pack - t))).min()))
    d_last = min(num_packs, int(((t * num_packs + j) // (t + 1)).max()))
    d = torch.arange(d_first, d_last + 1, device=rows.device).view(1, 1, -1)
    layers_per_block = max(1, CROWDING_BLOCK_ELEMENTS // (t.numel() * d.numel()))
    for first in range(0, live.numel(), layers_per_block):
        chosen = live[first:first + layers_per_block]
        bounds = _case_bounds(rows[chosen], num_packs, t.view(1, -1, 1), j.view(1, -1, 1), d)
        best[chosen] = torch.maximum(best[chosen], bounds.amax(dim=1))


def _case_bounds(
    rows: torch.Tensor, num_packs: int, t: torch.Tensor, j: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """[B, C]: the bound of each case (t, j) for each prefix row [B, n+1], the
    minimum over d. t, j: [1 or B, C, 1]; d: [1 or B, 1 or C, D]."""
    num_items = rows.shape[1] - 1
    per_pack = num_items // num_packs
    top = t * num_packs + j
    usable = top <= num_items
    # top items inside the crowded packs: the others hold at most t each,
    # and each crowded pack holds at least t+1
    in_crowded = t * d + torch.maximum(j, d)
    slots_left = d * per_pack - in_crowded
    infeasible = ~((slots_left >= 0) & usable & (in_crowded <= top))
    top_clamped = top.clamp(max=num_items)
    rest = slots_left.clamp(min=0).minimum(num_items - top_clamped)
    # (the lightest top items that the crowded packs hold + the smallest others) / d
    lightest_top = _take(rows, (top_clamped - in_crowded.clamp(max=num_items)).clamp(min=0))
    torch.sub(_take(rows, top_clamped), lightest_top, out=lightest_top)
    smallest = _take(rows, num_items - rest)
    torch.sub(rows[:, -1:].unsqueeze(2), smallest, out=smallest)
    per_d = lightest_top.add_(smallest).div_(d)
    per_d.masked_fill_(infeasible, float("inf"))
    # the unknown d: the weakest case
    return per_d.amin(dim=2).masked_fill_(~usable.squeeze(2), 0.0)


def _take(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """rows[b, index[b, ...]] for an index [1 or B, ...]: [B, ...]."""
    if index.shape[0] == 1:
        return rows.index_select(1, index.reshape(-1)).view(rows.shape[0], *index.shape[1:])
    return rows.gather(1, index.reshape(rows.shape[0], -1)).view(index.shape)


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
        gap_to_lower_bound=_gap(max_load, bound),
    )


# A gap this small is the float noise of summing loads, not a placement above the
# bound: a max load is never below the lower bound, and a gap of 1e-9 is one token
# in a billion.
GAP_NOISE = 1e-9


def _gap(max_load: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    gap = _ratio(max_load, bound) - 1.0
    return torch.where(gap.abs() <= GAP_NOISE, torch.zeros_like(gap), gap)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # An all-zero layer is perfectly balanced: 0/0 counts as 1.
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.ones_like(numerator))
