"""The Learn page's chapters, as data: each picks its instance and its packer.

A chapter is a tiny instance, the options that make the point and the phase the
step-through starts at; its words are filled from the run on the loads on
screen (``packviz.teach.chapter_texts``). The page runs the
real engine on it and shows the recorded events; nothing here is replayed
by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from packviz.config import PackerConfig, resolve_config
from packviz.packer import PackResult, pack

# One teaching instance per idea; found by searching small random instances
# for the behaviour each chapter shows (tests/test_lessons.py checks it).
GREEDY_LOADS = (13, 44, 70, 86, 59, 64, 60, 83, 66)
TWO_SWAP_LOADS = (48, 20, 77, 48, 48, 68, 99, 82, 34, 45, 72, 36)  # sample_data/teaching_12_items.csv
RESTART_LOADS = (86, 26, 63, 87, 46, 79, 32, 73, 11, 50, 86, 74)
DIFFERENCING_LOADS = (88, 82, 47, 45, 4, 81, 33, 50, 23, 62, 3, 40)
REPLICATION_LOADS = (39, 79, 82, 40, 81, 85)  # replicas help, and counts chosen with the packing help more
HIERARCHY_LOADS = (90, 20, 55, 30, 45, 60, 15, 70)  # 4 groups of 2 experts
AGING_LOADS = (120, 95, 80, 60, 150, 40, 70, 85)  # each expert's lasting popularity, in tokens a window
PAIRED_LOADS = (63, 12, 21, 25, 46, 14, 73, 85, 50, 56, 40, 43, 82, 18, 42, 45, 52, 75, 96, 55, 41, 94, 71, 98)

SEED_AFTER = "restarts-2swap"


@dataclass(frozen=True)
class Chapter:
    key: str
    title: str
    loads: tuple[float, ...]
    num_packs: int
    preset: str
    options: dict[str, Any] = field(default_factory=dict)
    start_phase: str = "start"
    compare_options: dict[str, Any] | None = None  # a second run to set beside this one
    # EPLB chapters: the slots, groups and nodes around the packing ("slots" alone: replication)
    eplb: dict[str, int] | None = None

    def config(self, **changes: Any) -> PackerConfig:
        return resolve_config(self.preset, **{**self.options, **changes})

    def run(self, loads: tuple[float, ...] | None = None, num_packs: int | None = None,
            **changes: Any) -> PackResult:
        """The real engine on this chapter's instance (or edited ``loads`` [n] into
        ``num_packs`` packs, a student's own), layer 0 traced."""
        weight = torch.tensor([list(loads or self.loads)], dtype=torch.float64)
        return pack(weight, num_packs or self.num_packs, self.config(**changes), trace_layers=[0])


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(
        "problem", "1. The problem",
        GREEDY_LOADS, 3, "eplb", start_phase="final",
    ),
    Chapter(
        "greedy", "2. Sort, then fill greedily",
        GREEDY_LOADS, 3, "eplb", start_phase="start",
    ),
    Chapter(
        "restarts", "3. Why noisy restarts",
        RESTART_LOADS, 4, SEED_AFTER, {"num_restarts": 6, "num_refined": 6, "noise_max": 0.3},
        start_phase="prune",
    ),
    Chapter(
        "pruning", "4. Pruning",
        RESTART_LOADS, 4, SEED_AFTER, {"num_restarts": 6, "num_refined": 3, "noise_max": 0.3},
        start_phase="prune",
    ),
    Chapter(
        "one-swap", "5. 1-swap: heaviest against lightest",
        GREEDY_LOADS, 3, SEED_AFTER, {"num_restarts": 1, "num_refined": 1, "two_swap": False},
        start_phase="refine",
    ),
    Chapter(
        "two-swap", "6. When no 1-swap helps, a 2-swap can",
        TWO_SWAP_LOADS, 3, SEED_AFTER, {"num_restarts": 1, "num_refined": 1},
        start_phase="refine", compare_options={"two_swap": False},
    ),
    Chapter(
        "choice", "7. The final choice",
        RESTART_LOADS, 4, SEED_AFTER, {"num_restarts": 6, "num_refined": 3, "noise_max": 0.3},
        start_phase="final",
    ),
    Chapter(
        "paired", "8. packviz's paired moves",
        PAIRED_LOADS, 6, "fast", {"num_restarts": 1}, start_phase="refine",
    ),
    Chapter(
        "differencing", "9. A better start: differencing",
        DIFFERENCING_LOADS, 3, "fast", {"num_refined": 2, "max_iterations": 0}, start_phase="final",
        compare_options={"start": "greedy", "num_restarts": 1},
    ),
    Chapter(
        "replication", "10. EPLB: replicating hot experts",
        REPLICATION_LOADS, 3, "eplb", start_phase="start", eplb={"slots": 9},
    ),
    Chapter(
        "hierarchy", "11. EPLB: groups, nodes, GPUs",
        HIERARCHY_LOADS, 4, "eplb", start_phase="start", eplb={"slots": 12, "groups": 4, "nodes": 2},
    ),
    Chapter(
        "aging", "12. Why plans age: planned on one window, served on the next",
        AGING_LOADS, 4, "eplb", start_phase="start", eplb={"slots": 12, "windows": 4},
    ),
)
CHAPTER_BY_KEY = {chapter.key: chapter for chapter in CHAPTERS}


# A shared link carries a lesson's loads inline; beyond this many it would not fit a URL.
MAX_INLINE_ITEMS = 64


def format_loads(loads: tuple[float, ...]) -> str:
    """Loads as they travel in a link: ``48,20,77.5``."""
    return ",".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in loads)


def parse_loads(text: str, num_packs: int) -> tuple[float, ...]:
    """Loads from a link or the editor; ValueError says what is wrong and where."""
    cells = [cell.strip() for cell in text.split(",")]
    if not 2 <= len(cells) <= MAX_INLINE_ITEMS:
        raise ValueError(f"{len(cells)} loads: a lesson takes 2 to {MAX_INLINE_ITEMS}")
    if len(cells) % num_packs:
        raise ValueError(f"{len(cells)} loads do not split evenly into {num_packs} packs")
    return tuple(parse_load(item, cell) for item, cell in enumerate(cells))


def parse_load(item: int, cell: str) -> float:
    """One load as typed, for item ``item`` (numbered from 0, as on the chart);
    ValueError names the item and the value."""
    cell = cell.strip()
    if not cell:
        raise ValueError(f"item {item} has no load")
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"item {item}: {cell[:20]!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"item {item}: {cell[:20]!r} is not a finite number >= 0")
    return value


def random_loads(num_items: int, seed: int) -> tuple[float, ...]:
    """A fresh instance for a student: ``num_items`` whole loads from 1 to 99."""
    generator = random.Random(seed)
    return tuple(float(generator.randint(1, 99)) for _ in range(num_items))
