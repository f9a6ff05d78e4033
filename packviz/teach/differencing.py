"""The differencing method's rows and merges, for the Learn page to draw.

The engine records where a differencing fill put each item, not the merges
that decided it (they run for every restart and layer at once). Here the
merges are worked out again, one at a time, from the fill's recorded order
and the true loads, and kept only when their last row is exactly the
placement the engine recorded: the drawing never shows a merge the run did
not make. (A noisy restart sorts by nudged loads, so its merges may differ
from these; then there is nothing to draw and the page shows the fill as
recorded.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packviz.trace.events import FillStarted, Placed

Row = tuple[tuple[int, ...], ...]  # [column] -> the items in it, a partial packing of one column per pack


@dataclass(frozen=True)
class Merged:
    """One stage of a differencing fill, as a frame's event: the rows alive
    after it, and which two merged into which (``None`` for the opening cut).

    ``joins[j]`` is the column of row ``into`` that column j of row ``taken``
    joined: the j-th lightest of one with the j-th heaviest of the other.
    """

    stage: int
    rows: tuple[Row, ...]
    row_ids: tuple[int, ...]
    into: int | None = None
    taken: int | None = None
    joins: tuple[int, ...] = ()
    spreads_before: tuple[float, float] | None = None
    kind: str = "merged"


def row_sums(row: Row, weight: Sequence[float]) -> list[float]:
    return [sum(weight[i] for i in column) for column in row]


def row_spread(row: Row, weight: Sequence[float]) -> float:
    sums = row_sums(row, weight)
    return max(sums) - min(sums)


def merge_stages(weight: Sequence[float], order: Sequence[int], num_packs: int) -> list[Merged]:
    """The cut into rows (stage 0) and each of the k - 1 merges after it.

    Rows of m consecutive items of ``order`` (heaviest first); the two live
    rows of largest spread merge (ties to the lower row), the heaviest column
    of the first taking the lightest of the second, and so on down.
    """
    rows: dict[int, Row] = {t: tuple((order[t * num_packs + s],) for s in range(num_packs))
                            for t in range(len(order) // num_packs)}
    stages = [Merged(0, tuple(rows.values()), tuple(rows))]
    while len(rows) > 1:
        ranked = sorted(rows, key=lambda t: (-row_spread(rows[t], weight), t))
        into, taken = ranked[0], ranked[1]
        sums_a, sums_b = row_sums(rows[into], weight), row_sums(rows[taken], weight)
        heaviest_a = sorted(range(num_packs), key=lambda s: (-sums_a[s], s))
        lightest_b = sorted(range(num_packs), key=lambda s: (sums_b[s], s))
        joins = [0] * num_packs
        for a_column, b_column in zip(heaviest_a, lightest_b):
            joins[b_column] = a_column
        merged = [list(column) for column in rows[into]]
        for b_column, column in enumerate(rows[taken]):
            merged[joins[b_column]].extend(column)
        spreads = (row_spread(rows[into], weight), row_spread(rows[taken], weight))
        rows[into] = tuple(tuple(column) for column in merged)
        del rows[taken]
        stages.append(Merged(len(stages), tuple(rows.values()), tuple(rows), into, taken, tuple(joins), spreads))
    return stages


def recorded_merges(weight: Sequence[float], num_packs: int, fill: FillStarted,
                    placements: Sequence[Placed]) -> list[Merged] | None:
    """The merges of a differencing fill, or None when they do not rebuild
    exactly the placement the engine recorded (or the fill is not one)."""
    if fill.rule != "differencing" or len(fill.order) != len(weight):
        return None
    stages = merge_stages(weight, fill.order, num_packs)
    last = stages[-1].rows[0]
    pack_of = {item: pack for pack, column in enumerate(last) for item in column}
    if any(pack_of.get(p.item) != p.pack for p in placements) or len(placements) != len(weight):
        return None
    return stages
