"""The swap refinement of ``driver._refine`` in NumPy, for tiny inputs.

On a few candidates of a few packs the refinement's cost is per-operation
overhead, which NumPy has several times less of than torch. Every function
here mirrors its namesake in ``driver`` step by step (stable sorts, first
index on ties, the same tie windows, all on whole-number units), so the
moves, and the placement, are the same; tests/test_engine.py checks it.

Shapes: ``units`` and ``ids`` [C, m, k] (candidate, pack, slot), as in driver.
"""

from __future__ import annotations

import functools

import numpy as np

from packviz.config import PackerConfig

_FIELDS = ("row", "gain", "is_two_swap", "pack_a", "pack_b", "slots_a", "slots_b")


def refine(units: np.ndarray, ids: np.ndarray, config: PackerConfig, window: float,
           targets: np.ndarray | None) -> None:
    """Swap items between packs of ``units`` and ``ids`` [C, m, k], in place
    (no trace is recorded: the traced path stays in torch)."""
    per_pack = units.shape[2]
    two_swap = (
        config.two_swap
        and per_pack >= 2
        and (config.two_swap_max_pack_size is None or per_pack <= config.two_swap_max_pack_size)
    )
    active = np.arange(units.shape[0])
    for _ in range(config.max_iterations):
        current = units[active]
        loads = current.sum(axis=2)
        if targets is not None:
            open_rows = loads.max(axis=1) > targets[active]
            active, current, loads = active[open_rows], current[open_rows], loads[open_rows]
        if active.size == 0:
            break
        moves = _best_moves(current, loads, config, two_swap, window)
        rows = active[moves["row"]]
        if rows.size == 0:
            break
        for column in range(2):
            used = moves["slots_a"][:, column] >= 0
            if not used.any():
                continue
            index_a = (rows[used], moves["pack_a"][used], moves["slots_a"][used, column])
            index_b = (rows[used], moves["pack_b"][used], moves["slots_b"][used, column])
            for table in (units, ids):
                held_a = table[index_a].copy()
                table[index_a] = table[index_b]
                table[index_b] = held_a
        # A candidate that found no move this time never will: its state is unchanged.
        active = np.unique(rows)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[r, index[r, j]]`` (and the trailing axes of a 3-d ``values``):
    torch's gather along axis 1, without take_along_axis's overhead."""
    return values[np.arange(values.shape[0])[:, None], index]


@functools.cache
def _item_pairs(per_pack: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot pairs i < j of a pack, in torch.triu_indices' order."""
    return np.triu_indices(per_pack, k=1)


def _score(moved: np.ndarray, difference: np.ndarray, kind: str) -> np.ndarray:
    if kind == "variance":
        return 2.0 * moved * (difference - moved)
    return difference - np.abs(difference - 2.0 * moved)


def _first_min(values: np.ndarray, window: float) -> np.ndarray:
    return np.argmax(values <= values.min(axis=1, keepdims=True) + window, axis=1)


def _first_max(values: np.ndarray, window: float | np.ndarray) -> np.ndarray:
    return np.argmax(values >= values.max(axis=1, keepdims=True) - window, axis=1)


def _tie_keys(values: np.ndarray, window: float) -> np.ndarray:
    positions = np.argsort(values, axis=1, kind="stable")
    ordered = _take(values, positions)
    starts = np.zeros(positions.shape, dtype=np.int64)
    starts[:, 1:] = np.diff(ordered, axis=1) > window
    keys = np.empty_like(positions)
    np.put_along_axis(keys, positions, starts.cumsum(axis=1), axis=1)
    return keys


def _stable_order(keys: np.ndarray) -> np.ndarray:
    return np.argsort(keys, axis=1, kind="stable")


def _scope_pairs(loads: np.ndarray, scope: str, scope_k: int,
                 window: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num_rows, num_packs = loads.shape
    if scope == "extremes":
        pack_a = _first_max(loads, window)[:, None]
        pack_b = _first_min(loads, window)[:, None]
    elif scope == "paired":
        keys = _tie_keys(loads, window)
        ranking = _stable_order(-keys)
        width = num_packs // 2
        heaviest = ranking[:, :width]
        lightest = ranking[:, ::-1][:, :width]
        return heaviest, lightest, _take(keys, heaviest) > _take(keys, lightest)
    elif scope == "top-k":
        width = min(num_packs, scope_k)
        keys = _tie_keys(loads, window)
        heaviest = _stable_order(-keys)[:, :width]
        lightest = _stable_order(keys)[:, :width]
        pack_a = np.repeat(heaviest, width, axis=1)
        pack_b = np.tile(lightest, (1, width))
    else:
        pack_a = _first_max(loads, window)[:, None]
        if num_packs == 1:
            return pack_a[:, :0], pack_a[:, :0], np.zeros((num_rows, 0), dtype=bool)
        every = np.broadcast_to(np.arange(num_packs), (num_rows, num_packs))
        pack_b = every[every != pack_a].reshape(num_rows, num_packs - 1)
        pack_a = np.broadcast_to(pack_a, (num_rows, num_packs - 1))
    return pack_a, pack_b, pack_a != pack_b


def _select(moves: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: moves[name][mask] for name in _FIELDS}


def _best_moves(units: np.ndarray, loads: np.ndarray, config: PackerConfig, two_swap: bool,
                window: float) -> dict[str, np.ndarray]:
    if config.swap_scope != "paired":
        return _pair_moves(units, loads, config, two_swap, window, config.swap_scope, per_pair=False)
    paired = _pair_moves(units, loads, config, two_swap, window, "paired", per_pair=True)
    stuck = np.ones(loads.shape[0], dtype=bool)
    stuck[paired["row"]] = False
    if not stuck.any():
        return paired
    rows = stuck.nonzero()[0]
    fallback = _pair_moves(units[rows], loads[rows], config, two_swap, window, "heaviest-vs-all", per_pair=False)
    fallback["row"] = rows[fallback["row"]]
    return {name: np.concatenate([paired[name], fallback[name]]) for name in _FIELDS}


def _pair_moves(units: np.ndarray, loads: np.ndarray, config: PackerConfig, two_swap: bool, window: float,
                scope: str, per_pair: bool) -> dict[str, np.ndarray]:
    num_rows, _, per_pack = units.shape
    pack_a, pack_b, valid = _scope_pairs(loads, scope, config.scope_k, window)
    num_pairs = pack_a.shape[1]
    if config.swap_score == "variance":
        threshold = np.broadcast_to(8.0 * window * loads.max(axis=1, keepdims=True), (num_rows, num_pairs))
    else:
        threshold = np.full((num_rows, num_pairs), 2.0 * window)
    difference = _take(loads, pack_a) - _take(loads, pack_b)
    best = np.full((num_rows, num_pairs), -np.inf)
    slot_a = np.full((num_rows, num_pairs, 2), -1, dtype=np.int64)
    slot_b = slot_a.copy()
    is_two = np.zeros((num_rows, num_pairs), dtype=bool)
    if num_pairs and (config.one_swap or two_swap):
        rows = np.arange(num_rows)[:, None]
        scored = _score_entries(units[rows, pack_a].reshape(-1, per_pack), units[rows, pack_b].reshape(-1, per_pack),
                                difference.reshape(-1), threshold.reshape(-1), valid.reshape(-1), config, two_swap)
        best, is_two, slot_a, slot_b = (values.reshape(target.shape) for values, target
                                        in zip(scored, (best, is_two, slot_a, slot_b)))
    moves = {"row": np.broadcast_to(np.arange(num_rows)[:, None], (num_rows, num_pairs)), "gain": best,
             "is_two_swap": is_two, "pack_a": pack_a, "pack_b": pack_b, "slots_a": slot_a, "slots_b": slot_b}
    if not per_pair:
        if num_pairs == 0:
            return _select(moves, is_two)  # no pairs: nothing
        pick = _first_max(best, threshold[:, :1])[:, None]
        moves = {name: _take(values, pick) for name, values in moves.items()}
        threshold = _take(threshold, pick)
    return _select(moves, moves["gain"] > threshold)


def _score_entries(items_a: np.ndarray, items_b: np.ndarray, difference: np.ndarray, threshold: np.ndarray,
                   valid: np.ndarray, config: PackerConfig,
                   two_swap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    num_entries, per_pack = items_a.shape
    unused = np.full(num_entries, -1, dtype=np.int64)
    best = np.full(num_entries, -np.inf)
    slot_a = np.stack([unused, unused], axis=1)
    slot_b = slot_a.copy()
    is_two = np.zeros(num_entries, dtype=bool)
    if config.one_swap:
        moved = items_a[:, :, None] - items_b[:, None, :]
        score = _score(moved, difference[:, None, None], config.swap_score)
        score = np.where(valid[:, None, None], score, -np.inf).reshape(num_entries, -1)
        within = _first_max(score, threshold[:, None])
        best = _take(score, within[:, None])[:, 0]
        slot_a = np.stack([within // per_pack, unused], axis=1)
        slot_b = np.stack([within % per_pack, unused], axis=1)
    if two_swap:
        first, second = _item_pairs(per_pack)
        num_item_pairs = first.size
        if config.two_swap_when_stuck:
            searching = (best <= threshold) & valid
            best_two = np.full_like(best, -np.inf)
            flat_two = np.zeros(num_entries, dtype=np.int64)
            if searching.any():
                chosen_a, chosen_b = items_a[searching], items_b[searching]
                best_two[searching], flat_two[searching] = _best_exchange(
                    chosen_a[:, first] + chosen_a[:, second], chosen_b[:, first] + chosen_b[:, second],
                    difference[searching], config.swap_score, threshold[searching])
        else:
            value, flat_two = _best_exchange(items_a[:, first] + items_a[:, second],
                                             items_b[:, first] + items_b[:, second],
                                             difference, config.swap_score, threshold)
            best_two = np.where(valid, value, -np.inf)
        is_two = best_two > best + threshold
        pair_a, pair_b = flat_two // num_item_pairs, flat_two % num_item_pairs
        two_slots_a = np.stack([first[pair_a], second[pair_a]], axis=1)
        two_slots_b = np.stack([first[pair_b], second[pair_b]], axis=1)
        best = np.where(is_two, best_two, best)
        slot_a = np.where(is_two[:, None], two_slots_a, slot_a)
        slot_b = np.where(is_two[:, None], two_slots_b, slot_b)
    return best, is_two, slot_a, slot_b


def _best_exchange(sums_a: np.ndarray, sums_b: np.ndarray, difference: np.ndarray, kind: str,
                   threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    num_entries, num_item_pairs = sums_b.shape
    order_b = np.argsort(sums_b, axis=1, kind="stable")
    sorted_b = _take(sums_b, order_b)
    target = sums_a - difference[:, None] / 2
    # torch.searchsorted (left) in a sorted row: how many values lie below the target
    position = (sorted_b[:, None, :] < target[:, :, None]).sum(axis=2)
    around = np.stack([np.maximum(position - 1, 0), np.minimum(position, num_item_pairs - 1)], axis=2)
    flat_around = around.reshape(num_entries, -1)
    moved = sums_a[:, :, None] - _take(sorted_b, flat_around).reshape(around.shape)
    score = _score(moved, difference[:, None, None], kind).reshape(num_entries, -1)
    pick = _first_max(score, threshold[:, None])
    value = _take(score, pick[:, None])[:, 0]
    second = _take(order_b, _take(flat_around, pick[:, None]))[:, 0]
    return value, (pick // 2) * num_item_pairs + second
