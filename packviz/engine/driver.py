"""The balanced-packing engine: restarts, greedy fill, pruning, swap refinement.

Shapes (L layers, n items, m packs, k = n/m items per pack, R restarts,
K kept candidates per layer, C = L*K candidates):

    weight        [L, n]      float64, the true loads
    units         [L, n]      float64 holding whole numbers: each load as a
                              multiple of ``tolerance * max load of its layer``
    order         [L*R, n]    item placed at each greedy step
    content_ids   [C, m, k]   item held by each (pack, slot) of a candidate
    pack_index    [L, n]      int64, pack of each item
    rank_in_pack  [L, n]      int64, slot of each item within its pack

Every decision (greedy pack choice, pruning, which move, which candidate) is
taken on ``units``. They are whole numbers below 2**53, so sums and
differences are exact and the placement is the same on CPU and CUDA, in any
reduction order. Rounding a load to units moves it by at most half a unit,
so values closer than ``tie_window`` units count as equal and the first
(lowest index) wins: multiplying every load by a constant gives the same
placement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from packviz.config import PackerConfig, restart_noise_scales
from packviz.engine import refine_numpy
from packviz.engine.recorder import TraceRecorder
from packviz.metrics import lower_bounds
from packviz.trace.events import STOP_ITERATION_CAP, STOP_LOWER_BOUND, STOP_NO_MOVE
from packviz.trace.replay import LayerTrace

# Working elements of one chunk of layers (see ``chunk_layers``): layers are
# packed a chunk at a time, so the engine's memory is fixed whatever the input size.
_CHUNK_ELEMENTS = 1 << 22


@dataclass
class EngineOutput:
    pack_index: torch.Tensor
    rank_in_pack: torch.Tensor
    pack_loads: torch.Tensor
    traces: dict[int, LayerTrace]


# Below this many (layer, restart, item) cells a CPU run is one thread: its
# tensors are small, so a second thread only adds hand-over costs, and on a
# busy machine waiting threads spin and can make it several times slower.
SINGLE_THREAD_MAX_CELLS = 1 << 20


@contextlib.contextmanager
def threads_for(device: torch.device, cells: int) -> Iterator[None]:
    """Run the engine on one CPU thread when the work is small (see above)."""
    # The setting is the process's: a concurrent large run in another thread
    # runs on one thread too until this one ends.
    before = torch.get_num_threads()
    if device.type != "cpu" or cells > SINGLE_THREAD_MAX_CELLS or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA device is available")
    return torch.device(device)


def layer_generator(seed: int, layer: int) -> torch.Generator:
    """One CPU generator per layer, so a layer's noise does not depend on its
    neighbours or on how layers are chunked, and CUDA sees the same numbers."""
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + layer) % (1 << 63))


def tie_window(num_items: int) -> float:
    """Units below which two sums of up to ``num_items`` loads count as equal."""
    return 2.0 * num_items


def to_units(weight: torch.Tensor, relative_tolerance: float) -> torch.Tensor:
    num_items = weight.shape[-1]
    # Keep every sum of units below 2**53 so that it stays exact.
    tolerance = max(relative_tolerance, 4.0 * num_items / 2.0**53)
    scale = weight.amax(dim=-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(weight / scale / tolerance)


def run(
    weight: torch.Tensor,
    num_packs: int,
    config: PackerConfig,
    trace_layers: Sequence[int] = (),
    layer_ids: Sequence[int] | None = None,
) -> EngineOutput:
    """Pack every layer of ``weight`` [L, n] (float64, on its device).

    layer_ids: each row's layer number, which seeds its noise (default
    0..L-1), so one layer packed alone gives the same placement as in its matrix.
    """
    num_layers, num_items = weight.shape
    ids = list(range(num_layers)) if layer_ids is None else [int(i) for i in layer_ids]
    chunk = chunk_layers(num_items, num_packs, config)
    # Filled chunk by chunk: no list of per-chunk results to concatenate at the end.
    pack_index = torch.empty(num_layers, num_items, dtype=torch.int64, device=weight.device)
    rank_in_pack = torch.empty_like(pack_index)
    pack_loads = torch.empty(num_layers, num_packs, dtype=torch.float64, device=weight.device)
    traces: dict[int, LayerTrace] = {}
    for start in range(0, num_layers, chunk):
        stop = min(start + chunk, num_layers)
        wanted = [layer - start for layer in trace_layers if start <= layer < stop]
        output = _run_chunk(weight[start:stop], num_packs, config, ids[start:stop], wanted)
        pack_index[start:stop] = output.pack_index
        rank_in_pack[start:stop] = output.rank_in_pack
        pack_loads[start:stop] = output.pack_loads
        traces.update({start + layer: trace for layer, trace in output.traces.items()})
    return EngineOutput(pack_index, rank_in_pack, pack_loads, traces)


def chunk_layers(num_items: int, num_packs: int, config: PackerConfig) -> int:
    """How many layers ``run`` packs at a time: as many as keep the working
    elements of their restarts' fills (R * n per layer) and of their kept
    candidates' refinement (slot tables, and some 16 values per pack pair
    scored) within ``_CHUNK_ELEMENTS``; at least one."""
    per_layer = config.num_restarts * num_items
    if config.refines:
        kept = min(config.num_refined, config.num_restarts)
        per_layer += kept * (4 * num_items + 16 * scope_pair_count(num_packs, config))
    return max(1, _CHUNK_ELEMENTS // max(per_layer, 1))


def scope_pair_count(num_packs: int, config: PackerConfig) -> int:
    """Pack pairs one candidate's refinement scores per iteration, at most
    (``paired`` adds the heaviest-vs-all fallback)."""
    if config.swap_scope == "extremes":
        return 1
    if config.swap_scope == "top-k":
        return min(num_packs, config.scope_k) ** 2
    if config.swap_scope == "heaviest-vs-all":
        return num_packs - 1
    return num_packs // 2 + num_packs - 1


def _run_chunk(
    weight: torch.Tensor,
    num_packs: int,
    config: PackerConfig,
    layer_ids: list[int],
    trace_layers: Sequence[int],
) -> EngineOutput:
    num_layers, num_items = weight.shape
    per_pack = num_items // num_packs
    device = weight.device
    traced = sorted(set(trace_layers))
    recorder = (TraceRecorder(weight, num_packs, config, layer_ids, traced, noise_scales(config).tolist())
                if traced else None)

    if per_pack == 1:
        return _identity(weight, num_packs, recorder)

    units = to_units(weight, config.relative_tolerance)
    window = tie_window(num_items)
    order = _restart_orders(units, config, layer_ids)
    if recorder is not None:
        recorder.remember_orders(order)
    restarts = config.num_restarts
    sorted_units = units.repeat_interleave(restarts, dim=0).gather(1, order)  # the load placed at each step
    if config.start == "snake":
        pack_of_step, rank_of_step = _snake_fill(order, num_packs, recorder)
    elif config.start == "differencing" and restarts > 1:
        pack_of_step, rank_of_step = _differencing_fill(sorted_units, num_packs, window)
        # Restart 0 of every layer is the plain greedy: the anchor of "never worse than the greedy".
        greedy_rows = torch.arange(num_layers, device=device) * restarts
        greedy_packs, greedy_ranks = _greedy_fill(sorted_units[greedy_rows], num_packs, window, None)
        pack_of_step[greedy_rows] = greedy_packs.to(device)
        rank_of_step[greedy_rows] = greedy_ranks.to(device)
        if recorder is not None:
            _record_fill(recorder, pack_of_step)
    else:
        pack_of_step, rank_of_step = _greedy_fill(sorted_units, num_packs, window, recorder)

    kept_count = min(config.num_refined, restarts)
    greedy_loads = torch.zeros(num_layers * restarts, num_packs, dtype=torch.float64, device=device)
    greedy_loads = greedy_loads.scatter_add_(1, pack_of_step.long(), sorted_units).view(num_layers, restarts, -1)
    pruning_keys = _choice_keys(greedy_loads, config.select_by, window)
    # No move raises a heaviest pack, so a kept candidate's refined max load is
    # at most its fill's. Pruned by spread, the greedy (restart 0) is kept
    # outright; pruned by max load, a fill heavier than the greedy (even within
    # a tie window) ranks after it, so whatever is kept first is no heavier.
    # Either way the result is never worse than eplb. Pruned by max load, the
    # lightest unperturbed fill is kept first too: a config with more restarts,
    # candidates or iterations then refines the very candidate a smaller one
    # refines, further, so ``best`` is never heavier than ``fast``.
    if config.select_by == "spread":
        pruning_keys[:, 0] = -1
    else:
        fill_max = greedy_loads.amax(dim=2)
        pruning_keys = _ranked_last(pruning_keys, fill_max > fill_max[:, :1])
        pruning_keys[torch.arange(num_layers, device=device), _anchor_restart(greedy_loads, config, window)] = -1
    kept = torch.sort(pruning_keys, dim=1, stable=True).indices[:, :kept_count]
    selected = (torch.arange(num_layers, device=device).unsqueeze(1) * restarts + kept).reshape(-1)

    num_candidates = selected.numel()
    candidate_rows = torch.arange(num_candidates, device=device).unsqueeze(1).expand(-1, num_items)
    content_ids = torch.empty(num_candidates, num_packs, per_pack, dtype=torch.int64, device=device)
    content_ids[candidate_rows, pack_of_step[selected].long(), rank_of_step[selected].long()] = (
        order[selected]
    )
    candidate_layer = torch.arange(num_layers, device=device).repeat_interleave(kept_count)
    content_units = _gather_loads(units, candidate_layer, content_ids)
    if recorder is not None:
        recorder.on_pruned(kept, content_ids)

    if config.refines:
        targets = None
        if config.stop_at_lower_bound:
            # FACTS' family alone: the crowding bound costs more than it saves here
            targets = lower_bounds(units, num_packs).amax(dim=1)[candidate_layer] + window
        if (recorder is None and device.type == "cpu" and num_candidates * num_items <= NUMPY_REFINE_MAX_CELLS
                and per_pack <= NUMPY_REFINE_MAX_PER_PACK):
            # the arrays share the tensors' memory: the swaps land in place
            refine_numpy.refine(content_units.numpy(), content_ids.numpy(), config, window,
                                None if targets is None else targets.numpy())
        else:
            _refine(content_units, content_ids, config, window, recorder, targets)

    final_loads = content_units.sum(dim=2).view(num_layers, kept_count, num_packs)
    final_keys = _choice_keys(final_loads, config.select_by, window)
    # A candidate chosen by spread may still carry a heavier pack than the greedy
    # fill: such candidates rank after every other. Chosen by max load, so do those
    # heavier than the refined anchor (candidate 0, no heavier than the greedy), whose
    # tie key may still be lower through a chain of near-equal candidates.
    if config.select_by == "spread":
        reference_max = greedy_loads[:, 0].amax(dim=1, keepdim=True)
    else:
        reference_max = final_loads[:, 0].amax(dim=1, keepdim=True)
    final_keys = _ranked_last(final_keys, final_loads.amax(dim=2) > reference_max)
    best = final_keys.argmin(dim=1)
    chosen = torch.arange(num_layers, device=device) * kept_count + best
    if recorder is not None:
        recorder.on_chosen(best)
    return _output(weight, content_ids[chosen], recorder)


def _identity(weight: torch.Tensor, num_packs: int, recorder: TraceRecorder | None) -> EngineOutput:
    num_layers = weight.shape[0]
    content_ids = torch.arange(num_packs, device=weight.device).view(1, num_packs, 1)
    content_ids = content_ids.expand(num_layers, -1, -1).contiguous()
    if recorder is not None:
        recorder.on_identity()
    return _output(weight, content_ids, recorder)


def _output(weight: torch.Tensor, content_ids: torch.Tensor, recorder: TraceRecorder | None) -> EngineOutput:
    """Turn each layer's chosen [m, k] slot table into the per-item result."""
    num_layers, num_packs, per_pack = content_ids.shape
    device = weight.device
    flat_ids = content_ids.reshape(num_layers, -1)
    packs = torch.arange(num_packs, device=device).repeat_interleave(per_pack).expand(num_layers, -1)
    ranks = torch.arange(per_pack, device=device).repeat(num_packs).expand(num_layers, -1)
    pack_index = torch.empty_like(flat_ids).scatter_(1, flat_ids, packs)
    rank_in_pack = torch.empty_like(flat_ids).scatter_(1, flat_ids, ranks)
    pack_loads = weight.gather(1, flat_ids).view(num_layers, num_packs, per_pack).sum(dim=2)
    traces = recorder.finish() if recorder is not None else {}
    return EngineOutput(pack_index, rank_in_pack, pack_loads, traces)


def noise_scales(config: PackerConfig) -> torch.Tensor:
    """Each restart's noise scale; restart 0 is always the unperturbed fill."""
    return torch.tensor(restart_noise_scales(config), dtype=torch.float64)


def _restart_orders(units: torch.Tensor, config: PackerConfig, layer_ids: list[int]) -> torch.Tensor:
    """Greedy order of every restart: items by perturbed load, heaviest first,
    ties by item index. Returns [L*R, n] int64."""
    num_layers, num_items = units.shape
    restarts = config.num_restarts
    keys = units.unsqueeze(1).expand(-1, restarts, -1)
    scales = noise_scales(config)
    if restarts > 1 and bool((scales > 0).any()):
        noise = torch.stack([
            torch.rand((restarts, num_items), generator=layer_generator(config.seed, layer_ids[layer]),
                       dtype=torch.float64)
            for layer in range(num_layers)
        ]).to(units.device)
        keys = keys * (1.0 + noise * scales.to(units.device).view(1, -1, 1))
    order = torch.sort(keys.reshape(-1, num_items), dim=1, descending=True, stable=True).indices
    return order


def _greedy_fill(
    sorted_units: torch.Tensor,
    num_packs: int,
    window: float,
    recorder: TraceRecorder | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put each step's load (``sorted_units`` [rows, n], heaviest first) into
    the lightest pack with room (the lowest-numbered on a tie). Returns the
    pack and slot of each step, int32."""
    num_rows, num_items = sorted_units.shape
    per_pack = num_items // num_packs
    device = sorted_units.device
    if device.type == "cpu" and num_rows * num_packs <= NUMPY_FILL_MAX_CELLS:
        return _greedy_fill_numpy(sorted_units.numpy(), num_packs, window, recorder)
    loads = torch.zeros(num_rows, num_packs, dtype=torch.float64, device=device)
    # Same as loads, but +inf once a pack is full, so argmin only sees packs with room.
    open_loads = torch.zeros_like(loads)
    counts = torch.zeros(num_rows, num_packs, dtype=torch.int64, device=device)
    pack_of_step = torch.empty(num_rows, num_items, dtype=torch.int32, device=device)
    rank_of_step = torch.empty_like(pack_of_step)
    rows = torch.arange(num_rows, device=device)
    infinity = torch.tensor(float("inf"), dtype=torch.float64, device=device)
    for step in range(num_items):
        chosen = _first_min(open_loads, window)
        rank = counts[rows, chosen]
        pack_of_step[:, step] = chosen
        rank_of_step[:, step] = rank
        new_load = loads[rows, chosen] + sorted_units[:, step]
        loads[rows, chosen] = new_load
        counts[rows, chosen] = rank + 1
        open_loads[rows, chosen] = torch.where(rank + 1 < per_pack, new_load, infinity)
        if recorder is not None:
            recorder.on_place(step, chosen)
    return pack_of_step, rank_of_step


# Below this many (candidate, item) cells the refinement's cost is per-operation
# overhead too, and it runs in NumPy (refine_numpy, the same moves). Its 2-swap
# search compares all k(k-1)/2 pair sums of a pack at once, hence the cap on k.
NUMPY_REFINE_MAX_CELLS = 1 << 12
NUMPY_REFINE_MAX_PER_PACK = 16

# Below this many (row, pack) cells the fill's cost is per-step overhead,
# which NumPy has five times less of than torch; the decisions are the same.
NUMPY_FILL_MAX_CELLS = 1 << 16


def _greedy_fill_numpy(
    sorted_units: np.ndarray, num_packs: int, window: float, recorder: TraceRecorder | None
) -> tuple[torch.Tensor, torch.Tensor]:
    num_rows, num_items = sorted_units.shape
    per_pack = num_items // num_packs
    loads = np.zeros((num_rows, num_packs))
    open_loads = np.zeros((num_rows, num_packs))
    counts = np.zeros((num_rows, num_packs), dtype=np.int64)
    pack_of_step = np.empty((num_rows, num_items), dtype=np.int32)
    rank_of_step = np.empty_like(pack_of_step)
    rows = np.arange(num_rows)
    for step in range(num_items):
        lowest = open_loads.min(axis=1, keepdims=True)
        chosen = np.argmax(open_loads <= lowest + window, axis=1)
        rank = counts[rows, chosen]
        pack_of_step[:, step] = chosen
        rank_of_step[:, step] = rank
        new_load = loads[rows, chosen] + sorted_units[:, step]
        loads[rows, chosen] = new_load
        counts[rows, chosen] = rank + 1
        open_loads[rows, chosen] = np.where(rank + 1 < per_pack, new_load, np.inf)
        if recorder is not None:
            recorder.on_place(step, torch.from_numpy(chosen))
    return torch.from_numpy(pack_of_step), torch.from_numpy(rank_of_step)


def _snake_fill(
    order: torch.Tensor, num_packs: int, recorder: TraceRecorder | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deal the items, in ``order``, to packs 0..m-1, then m-1..0, and so on:
    no loop over items, so it costs next to nothing; refinement does the rest."""
    num_rows, num_items = order.shape
    step = torch.arange(num_items, device=order.device)
    rank = step // num_packs
    column = step % num_packs
    pack = torch.where(rank % 2 == 0, column, num_packs - 1 - column)
    pack_of_step = pack.to(torch.int32).expand(num_rows, -1).contiguous()
    rank_of_step = rank.to(torch.int32).expand(num_rows, -1).contiguous()
    if recorder is not None:
        _record_fill(recorder, pack_of_step)
    return pack_of_step, rank_of_step


def _record_fill(recorder: TraceRecorder, pack_of_step: torch.Tensor) -> None:
    """Hand a fill computed all at once to the recorder, step by step."""
    for step in range(pack_of_step.shape[1]):
        recorder.on_place(step, pack_of_step[:, step].long())


def _differencing_fill(
    sorted_units: torch.Tensor, num_packs: int, window: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The balanced largest differencing method on every row at once.

    Steps t*m .. t*m+m-1 of a row (its t-th run of m items, heaviest first)
    start as a partial packing of one item per pack. k - 1 times, the two
    partial packings with the largest spread (heaviest minus lightest pack;
    ties to the lower index) merge: the heaviest pack of one takes the
    lightest of the other, and so on down. Each pack of the last one left
    holds one item of every run, so the step at t*m + s has rank t.
    Returns the pack and slot of each step, int32, like the greedy fill.
    """
    num_rows, num_items = sorted_units.shape
    per_pack = num_items // num_packs
    device = sorted_units.device
    rows = torch.arange(num_rows, device=device)
    sums = sorted_units.reshape(num_rows, per_pack, num_packs).clone()
    # slot[r, t, s]: pack (within its partial packing) of the item at step t*m + s
    slot = torch.arange(num_packs, device=device).expand(num_rows, per_pack, -1).clone()
    owner = torch.arange(per_pack, device=device).expand(num_rows, -1).clone()
    alive = torch.ones(num_rows, per_pack, dtype=torch.bool, device=device)
    for _ in range(per_pack - 1):
        # merged rows sit well outside the tie window below every live one
        spread = torch.where(alive, sums.amax(dim=2) - sums.amin(dim=2), -4.0 * window)
        ranking = torch.sort(-_tie_keys(spread, window), dim=1, stable=True).indices
        first, second = ranking[:, 0], ranking[:, 1]
        sums_a, sums_b = sums[rows, first], sums[rows, second]
        heaviest_a = torch.sort(-_tie_keys(sums_a, window), dim=1, stable=True).indices
        lightest_b = torch.sort(_tie_keys(sums_b, window), dim=1, stable=True).indices
        # the j-th lightest pack of ``second`` joins the j-th heaviest of ``first``
        joins = torch.empty_like(lightest_b).scatter_(1, lightest_b, heaviest_a)
        added = torch.empty_like(sums_b).scatter_(1, heaviest_a, sums_b.gather(1, lightest_b))
        sums[rows, first] = sums_a + added
        sums[rows, second] = 0.0
        alive[rows, second] = False
        moving = (owner == second.unsqueeze(1)).unsqueeze(2)
        slot = torch.where(moving, joins.gather(1, slot.view(num_rows, -1)).view_as(slot), slot)
        owner = torch.where(moving.squeeze(2), first.unsqueeze(1), owner)
    pack_of_step = slot.reshape(num_rows, num_items).to(torch.int32)
    rank_of_step = (torch.arange(num_items, device=device) // num_packs).to(torch.int32).expand(num_rows, -1)
    return pack_of_step, rank_of_step.contiguous()


def _anchor_restart(fill_loads: torch.Tensor, config: PackerConfig, window: float) -> torch.Tensor:
    """[L]: of the restarts without noise (the plain greedy, and the plain
    differencing fill with ``differencing``), the lightest fill by max load
    then spread, the greedy on ties or where the other is heavier. Judged among
    those restarts alone (tie groups never chain through noisy fills), so every
    config with the same fill rule picks the same one, whatever its restart
    count. fill_loads: [L, R, m]."""
    plain = int((noise_scales(config) == 0).long().cumprod(dim=0).sum())
    loads = fill_loads[:, :plain]
    keys = _choice_keys(loads, "max_load", window)
    fill_max = loads.amax(dim=2)
    keys = _ranked_last(keys, fill_max > fill_max[:, :1])
    return keys.argmin(dim=1)


def _ranked_last(keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``keys`` with the ``mask``ed entries moved after every other, their own
    order kept (for candidates heavier than the greedy)."""
    return keys + mask.long() * (keys.amax() + 1)


def _choice_keys(loads: torch.Tensor, select_by: str, window: float) -> torch.Tensor:
    """Integer keys [L, X] of candidates' pack loads [L, X, m], smaller is
    better: by spread, or by max load then spread; equal keys keep index order."""
    spread = _tie_keys(loads.amax(dim=2) - loads.amin(dim=2), window)
    if select_by == "max_load":
        return _tie_keys(loads.amax(dim=2), window) * loads.shape[1] + spread
    return spread


def _gather_loads(units: torch.Tensor, candidate_layer: torch.Tensor, content_ids: torch.Tensor) -> torch.Tensor:
    num_candidates = content_ids.shape[0]
    flat = units[candidate_layer].gather(1, content_ids.reshape(num_candidates, -1))
    return flat.view(content_ids.shape)


@dataclass
class _Moves:
    """Chosen moves, one per entry: ``row`` is the candidate it applies to
    (a ``paired`` scope moves several disjoint pack pairs of one candidate at
    once). Slot columns hold -1 where a 1-swap leaves the second unused."""

    row: torch.Tensor
    gain: torch.Tensor
    is_two_swap: torch.Tensor
    pack_a: torch.Tensor
    pack_b: torch.Tensor
    slots_a: torch.Tensor
    slots_b: torch.Tensor

    def select(self, mask: torch.Tensor) -> _Moves:
        return _Moves(*(getattr(self, name)[mask] for name in _Moves.__dataclass_fields__))

    @staticmethod
    def concat(parts: list[_Moves]) -> _Moves:
        return _Moves(*(torch.cat([getattr(p, name) for p in parts]) for name in _Moves.__dataclass_fields__))


def _refine(
    content_units: torch.Tensor,
    content_ids: torch.Tensor,
    config: PackerConfig,
    window: float,
    recorder: TraceRecorder | None,
    targets: torch.Tensor | None = None,
) -> None:
    """Swap items between packs, in place, while a move helps; a candidate
    whose max load reaches its ``targets`` entry (its layer's LB) stops early."""
    per_pack = content_units.shape[2]
    two_swap = (
        config.two_swap
        and per_pack >= 2
        and (config.two_swap_max_pack_size is None or per_pack <= config.two_swap_max_pack_size)
    )
    active = torch.arange(content_units.shape[0], device=content_units.device)
    for iteration in range(config.max_iterations):
        current = content_units[active]
        loads = current.sum(dim=2)
        if targets is not None:
            open_rows = loads.amax(dim=1) > targets[active]
            if recorder is not None:
                recorder.on_stopped(active[~open_rows], STOP_LOWER_BOUND, iteration)
            active, current, loads = active[open_rows], current[open_rows], loads[open_rows]
        if active.numel() == 0:
            break
        moves = _best_moves(current, loads, config, two_swap, window)
        moves.row = active[moves.row]
        if recorder is not None:
            recorder.on_stopped(active[~torch.isin(active, moves.row)], STOP_NO_MOVE, iteration)
        if moves.row.numel() == 0:
            break
        if recorder is not None:
            recorder.before_swap(moves)
        for column in range(2):
            used = moves.slots_a[:, column] >= 0
            if not bool(used.any()):
                continue
            index_a = (moves.row[used], moves.pack_a[used], moves.slots_a[used, column])
            index_b = (moves.row[used], moves.pack_b[used], moves.slots_b[used, column])
            for table in (content_units, content_ids):
                held_a = table[index_a].clone()
                table[index_a] = table[index_b]
                table[index_b] = held_a
        if recorder is not None:
            recorder.after_swap(iteration)
        # A candidate that found no move this time never will: its state is unchanged.
        active = torch.unique(moves.row)
    else:
        if recorder is not None:
            recorder.on_stopped(active, STOP_ITERATION_CAP, config.max_iterations)


def _score(moved: torch.Tensor, difference: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "variance":
        return 2.0 * moved * (difference - moved)
    return difference - (difference - 2.0 * moved).abs()


def _first_min(values: torch.Tensor, window: float) -> torch.Tensor:
    """Per row, the first column within ``window`` of the row's minimum."""
    lowest = values.amin(dim=1, keepdim=True)
    return (values <= lowest + window).to(torch.uint8).argmax(dim=1)


def _first_max(values: torch.Tensor, window: float | torch.Tensor) -> torch.Tensor:
    highest = values.amax(dim=1, keepdim=True)
    return (values >= highest - window).to(torch.uint8).argmax(dim=1)


def _tie_keys(values: torch.Tensor, window: float) -> torch.Tensor:
    """Rank of each value's tie group within its row: values closer than
    ``window`` to their sorted neighbour share a key, so a stable sort on the
    keys orders by value with ties by index."""
    ordered, positions = torch.sort(values, dim=1, stable=True)
    starts = torch.zeros_like(positions)
    starts[:, 1:] = (ordered[:, 1:] - ordered[:, :-1] > window).long()
    return torch.empty_like(positions).scatter_(1, positions, starts.cumsum(dim=1))


def _scope_pairs(
    loads: torch.Tensor, scope: str, scope_k: int, window: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (pack_a, pack_b) pairs a move may join, [A, Q] each, and which are valid."""
    num_rows, num_packs = loads.shape
    device = loads.device
    if scope == "extremes":
        pack_a = _first_max(loads, window).unsqueeze(1)
        pack_b = _first_min(loads, window).unsqueeze(1)
    elif scope == "paired":
        # Both halves come from one ranking of the packs: position i pairs with
        # position m-1-i, so every pack sits in at most one pair and the moves
        # of one iteration never touch the same pack. Two independent sorts
        # disagree inside chains of tied keys and would share packs.
        keys = _tie_keys(loads, window)
        ranking = torch.sort(-keys, dim=1, stable=True).indices
        width = num_packs // 2
        heaviest = ranking[:, :width]
        lightest = ranking.flip(1)[:, :width]
        # A pair of tied packs has nothing to gain; it stays in the scope but
        # is marked invalid.
        return heaviest, lightest, keys.gather(1, heaviest) > keys.gather(1, lightest)
    elif scope == "top-k":
        width = min(num_packs, scope_k)
        keys = _tie_keys(loads, window)
        heaviest = torch.sort(-keys, dim=1, stable=True).indices[:, :width]
        lightest = torch.sort(keys, dim=1, stable=True).indices[:, :width]
        pack_a = heaviest.repeat_interleave(width, dim=1)
        pack_b = lightest.repeat(1, width)
    else:
        pack_a = _first_max(loads, window).unsqueeze(1)
        if num_packs == 1:
            return pack_a[:, :0], pack_a[:, :0], torch.zeros(num_rows, 0, dtype=torch.bool, device=device)
        every = torch.arange(num_packs, device=device).expand(num_rows, -1)
        pack_b = every[every != pack_a].view(num_rows, num_packs - 1)
        pack_a = pack_a.expand(-1, num_packs - 1)
    return pack_a, pack_b, pack_a != pack_b


def _best_moves(
    content_units: torch.Tensor, loads: torch.Tensor, config: PackerConfig, two_swap: bool, window: float
) -> _Moves:
    """The improving moves of this iteration: the best one per candidate, or
    for ``paired``, the best per disjoint pack pair (and where no pair
    improves, the heaviest pack against every other)."""
    if config.swap_scope != "paired":
        return _pair_moves(content_units, loads, config, two_swap, window, config.swap_scope, per_pair=False)
    paired = _pair_moves(content_units, loads, config, two_swap, window, "paired", per_pair=True)
    stuck = torch.ones(loads.shape[0], dtype=torch.bool, device=loads.device)
    stuck[paired.row] = False
    if not bool(stuck.any()):
        return paired
    rows = stuck.nonzero().squeeze(1)
    fallback = _pair_moves(content_units[rows], loads[rows], config, two_swap, window, "heaviest-vs-all",
                           per_pair=False)
    fallback.row = rows[fallback.row]
    return _Moves.concat([paired, fallback])


def _pair_moves(
    content_units: torch.Tensor,
    loads: torch.Tensor,
    config: PackerConfig,
    two_swap: bool,
    window: float,
    scope: str,
    per_pair: bool,
) -> _Moves:
    num_rows = content_units.shape[0]
    device = content_units.device
    pack_a, pack_b, valid = _scope_pairs(loads, scope, config.scope_k, window)
    num_pairs = pack_a.shape[1]
    if config.swap_score == "variance":
        # 2d(D-d) carries the units' rounding times loads of up to the row's largest.
        threshold = 8.0 * window * loads.amax(dim=1, keepdim=True).expand(-1, num_pairs)
    else:
        threshold = torch.full((num_rows, num_pairs), 2.0 * window, dtype=torch.float64, device=device)
    difference = loads.gather(1, pack_a) - loads.gather(1, pack_b)

    # Best per (row, pair); -inf where the move kind is off.
    best = torch.full((num_rows, num_pairs), float("-inf"), dtype=torch.float64, device=device)
    slot_a = torch.full((num_rows, num_pairs, 2), -1, dtype=torch.int64, device=device)
    slot_b = slot_a.clone()
    is_two = torch.zeros(num_rows, num_pairs, dtype=torch.bool, device=device)
    if num_pairs and (config.one_swap or two_swap):
        _score_pairs(content_units, pack_a, pack_b, difference, threshold, valid, config, two_swap,
                     (best, is_two, slot_a, slot_b))

    rows = torch.arange(num_rows, device=device).unsqueeze(1).expand(-1, num_pairs)
    moves = _Moves(rows, best, is_two, pack_a, pack_b, slot_a, slot_b)
    if not per_pair:
        if num_pairs == 0:
            return moves.select(is_two)  # no pairs: nothing
        pick = _first_max(best, threshold[:, :1]).unsqueeze(1)
        moves = _Moves(*(getattr(moves, name).gather(1, pick if getattr(moves, name).dim() == 2 else
                                                     pick.unsqueeze(2).expand(-1, -1, 2))
                         for name in _Moves.__dataclass_fields__))
        threshold = threshold.gather(1, pick)
    improving = moves.gain > threshold
    return moves.select(improving)


# Elements of one refinement working tensor: the (row, pair) entries are scored
# in blocks whose [entries, k, k] grid holds at most this many (or one entry's
# k * k, when larger), so refinement memory does not grow with candidates x packs.
REFINE_BLOCK_ELEMENTS = 1 << 20


def _score_pairs(
    content_units: torch.Tensor,
    pack_a: torch.Tensor,
    pack_b: torch.Tensor,
    difference: torch.Tensor,
    threshold: torch.Tensor,
    valid: torch.Tensor,
    config: PackerConfig,
    two_swap: bool,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    """Fill ``out`` = (best, is_two, slot_a, slot_b), [A, Q] and [A, Q, 2], with
    the best move of each (row, pair). Entries are independent, so scoring them
    block by block gives the same moves as scoring them all at once."""
    num_rows, num_pairs = pack_a.shape
    per_pack = content_units.shape[2]
    entries_per_block = max(1, REFINE_BLOCK_ELEMENTS // (per_pack * per_pack))
    flat_out = [tensor.view(num_rows * num_pairs, *tensor.shape[2:]) for tensor in out]
    if num_rows * num_pairs <= entries_per_block:
        # one block: gathering whole packs is far cheaper than indexing entry by entry
        def packs_of(pack: torch.Tensor) -> torch.Tensor:
            return content_units.gather(1, pack.unsqueeze(2).expand(-1, -1, per_pack)).view(-1, per_pack)

        scored = _score_entries(packs_of(pack_a), packs_of(pack_b), difference.reshape(-1), threshold.reshape(-1),
                                valid.reshape(-1), config, two_swap)
        for target, values in zip(flat_out, scored):
            target.copy_(values)
        return
    for first in range(0, num_rows * num_pairs, entries_per_block):
        entry = torch.arange(first, min(first + entries_per_block, num_rows * num_pairs), device=pack_a.device)
        row, pair = entry // num_pairs, entry % num_pairs
        scored = _score_entries(
            content_units[row, pack_a[row, pair]], content_units[row, pack_b[row, pair]],
            difference[row, pair], threshold[row, pair], valid[row, pair], config, two_swap,
        )
        for target, values in zip(flat_out, scored):
            target[first:first + entry.numel()] = values


def _score_entries(
    items_a: torch.Tensor,
    items_b: torch.Tensor,
    difference: torch.Tensor,
    threshold: torch.Tensor,
    valid: torch.Tensor,
    config: PackerConfig,
    two_swap: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best move of each entry, given the k loads of its packs a and b
    (``items_a``, ``items_b`` [E, k]): its score, whether it is a 2-swap, and
    the slots it moves in a and in b ([E, 2], -1 where unused)."""
    num_entries, per_pack = items_a.shape
    device = items_a.device
    minus_inf = torch.tensor(float("-inf"), dtype=torch.float64, device=device)
    unused = torch.full((num_entries,), -1, dtype=torch.int64, device=device)
    best = torch.full((num_entries,), float("-inf"), dtype=torch.float64, device=device)
    slot_a = torch.stack([unused, unused], dim=1)
    slot_b = slot_a.clone()
    is_two = torch.zeros(num_entries, dtype=torch.bool, device=device)
    if config.one_swap:
        moved = items_a.unsqueeze(2) - items_b.unsqueeze(1)
        score = _score(moved, difference[:, None, None], config.swap_score)
        score = torch.where(valid[:, None, None], score, minus_inf).reshape(num_entries, -1)
        within = _first_max(score, threshold.unsqueeze(1))
        best = score.gather(1, within.unsqueeze(1)).squeeze(1)
        slot_a = torch.stack([within // per_pack, unused], dim=1)
        slot_b = torch.stack([within % per_pack, unused], dim=1)
    if two_swap:
        first, second = torch.triu_indices(per_pack, per_pack, offset=1, device=device)
        num_item_pairs = first.numel()
        if config.two_swap_when_stuck:
            # only where no 1-swap helps: few entries, so pick them out
            searching = (best <= threshold) & valid
            best_two = torch.full_like(best, float("-inf"))
            flat_two = torch.zeros(num_entries, dtype=torch.int64, device=device)
            if bool(searching.any()):
                sums_a = items_a[searching][:, first] + items_a[searching][:, second]
                sums_b = items_b[searching][:, first] + items_b[searching][:, second]
                best_two[searching], flat_two[searching] = _best_exchange(
                    sums_a, sums_b, difference[searching], config.swap_score, threshold[searching])
        else:
            value, flat_two = _best_exchange(items_a[:, first] + items_a[:, second],
                                             items_b[:, first] + items_b[:, second],
                                             difference, config.swap_score, threshold)
            best_two = torch.where(valid, value, minus_inf)
        is_two = best_two > best + threshold
        pair_a, pair_b = flat_two // num_item_pairs, flat_two % num_item_pairs
        two_slots_a = torch.stack([first[pair_a], second[pair_a]], dim=1)
        two_slots_b = torch.stack([first[pair_b], second[pair_b]], dim=1)
        best = torch.where(is_two, best_two, best)
        slot_a = torch.where(is_two.unsqueeze(1), two_slots_a, slot_a)
        slot_b = torch.where(is_two.unsqueeze(1), two_slots_b, slot_b)
    return best, is_two, slot_a, slot_b


def _best_exchange(
    sums_a: torch.Tensor,
    sums_b: torch.Tensor,
    difference: torch.Tensor,
    kind: str,
    threshold: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best 2-for-2 exchange per (row, pair) entry: pair sums [E, P] of each
    side, returning the score and the flat index ``i * P + j``.

    Both scores peak where the load moved, sums_a[i] - sums_b[j], is nearest
    to half the packs' difference, so for each i only the two sums_b around
    sums_a[i] - D/2 (a binary search in sorted sums_b) can be best: O(P log P)
    per entry instead of all P*P exchanges, in O(E*P) memory.
    """
    num_entries, num_item_pairs = sums_b.shape
    sorted_b, order_b = torch.sort(sums_b, dim=1, stable=True)
    target = (sums_a - difference.unsqueeze(1) / 2).contiguous()
    position = torch.searchsorted(sorted_b, target)
    around = torch.stack([(position - 1).clamp(min=0), position.clamp(max=num_item_pairs - 1)], dim=2)
    moved = sums_a.unsqueeze(2) - sorted_b.gather(1, around.view(num_entries, -1)).view(around.shape)
    score = _score(moved, difference[:, None, None], kind).reshape(num_entries, -1)
    pick = _first_max(score, threshold.unsqueeze(1))
    value = score.gather(1, pick.unsqueeze(1)).squeeze(1)
    first = pick // 2
    second = order_b.gather(1, around.view(num_entries, -1).gather(1, pick.unsqueeze(1))).squeeze(1)
    return value, first * num_item_pairs + second
