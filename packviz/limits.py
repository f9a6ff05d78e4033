"""Will a packing fit in memory? An estimate made before running, from the sizes alone.

The engine packs a chunk of layers at a time and scores pack pairs in blocks, so its
working memory is a bounded amount per chunk plus what grows with the data (the
placement, its check and the lower bounds, all [layers, items]). This module mirrors
that arithmetic: pure functions of the sizes and a PackerConfig, no torch work, no UI.

API (``config`` is a resolved PackerConfig: ``resolve_config(preset, **options)``):

    check_fits(layers, items, packs, config, budget_bytes=APP_BUDGET_BYTES) -> str | None
        None when the run fits; otherwise one plain sentence for the user: the estimate,
        what takes most of it, and what fits at this size, e.g. "Packing 1000 layers x
        4096 items into 1024 packs with these settings needs about 2.1 GB of working
        memory, most of it for the greedy fills of the restarts; the budget is 2.0 GB.
        What fits at this size: at most 660 layers, or at most 7707 restarts."
    fits(layers, items, packs, config, budget_bytes=APP_BUDGET_BYTES) -> bool
    estimate_memory(layers, items, packs, config) -> MemoryEstimate
        .fill_bytes, .refinement_bytes, .matrix_bytes, .fixed_bytes, .total_bytes
    max_layers_that_fit(items, packs, config, budget_bytes=APP_BUDGET_BYTES) -> int
        the most layers that fit (0: not even one), e.g. to cap a generator form
    max_restarts_that_fit(layers, items, packs, config, budget_bytes=APP_BUDGET_BYTES) -> int
        the most restarts that fit, other settings kept (0: not even one)
    APP_BUDGET_BYTES = 2 GiB, the app's budget

The budget is for what ``pack()`` and ``layer_metrics()`` allocate on top of what the
process already holds (Python, torch, the app, the loaded loads); traces of a few
layers are small and not counted. The estimate is meant as an upper bound (the tests
check it against measured peaks on several shapes; ``python benchmarks/bench_memory.py
--calibrate`` prints both) and counts CUDA memory alike when the packer runs there.
Sizes that ``pack()`` refuses (packs not dividing items) are the caller's to refuse first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from packviz import metrics
from packviz.config import PackerConfig
from packviz.engine import driver as engine

APP_BUDGET_BYTES = 2 * 1024**3

# Bytes per element, from the measured peaks of benchmarks/bench_memory.py --calibrate,
# rounded up: the restarts' fills (orders, noisy keys and their sort, placed loads, fill
# steps); each candidate's slot tables and their copies; the scores, slots and moves of
# each pack pair; one cell of a block of the 1-swap grid, of the 2-swap search; and what
# lives per loaded value (the placement, its check, the lower bound's sorted prefix sums).
_FILL_BYTES = 56
_TABLE_BYTES = 48
_PAIR_BYTES = 160
_ONE_SWAP_CELL_BYTES = 32
_TWO_SWAP_CELL_BYTES = 112
_MATRIX_BYTES = 80
# The crowding bound's blocks and the allocator's slack.
_FIXED_BYTES = 16 * metrics.CROWDING_BLOCK_ELEMENTS + (32 << 20)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak working memory of ``pack()`` plus ``layer_metrics()``, in bytes, by part."""

    fill_bytes: int  # one chunk of layers' greedy fills, all restarts
    refinement_bytes: int  # one chunk's candidates, their pair scores, one block of swap grid
    matrix_bytes: int  # what grows with layers x items: the placement, its check, the lower bounds
    fixed_bytes: int  # the lower bound's blocks, allocator slack

    @property
    def total_bytes(self) -> int:
        return self.fill_bytes + self.refinement_bytes + self.matrix_bytes + self.fixed_bytes


def estimate_memory(layers: int, items: int, packs: int, config: PackerConfig) -> MemoryEstimate:
    """The estimated peak working memory of packing [layers, items] loads into
    ``packs`` packs with ``config`` and computing their metrics."""
    per_pack = max(1, items // packs)
    chunk = min(layers, engine.chunk_layers(items, packs, config))
    fill = _FILL_BYTES * chunk * config.num_restarts * items
    refinement = 0
    if config.refines and per_pack > 1:
        candidates = chunk * min(config.num_refined, config.num_restarts)
        pairs = engine.scope_pair_count(packs, config)
        refinement = _TABLE_BYTES * candidates * items + _PAIR_BYTES * candidates * pairs
        if packs > 1:
            # a block of (candidate, pair) entries, or one entry's k x k when larger
            per_entry = per_pack * per_pack
            cells = min(candidates * pairs * per_entry, max(engine.REFINE_BLOCK_ELEMENTS, per_entry))
            cap = config.two_swap_max_pack_size
            two_swap = config.two_swap and (cap is None or per_pack <= cap)
            refinement += cells * (_ONE_SWAP_CELL_BYTES * config.one_swap + _TWO_SWAP_CELL_BYTES * two_swap)
    return MemoryEstimate(
        fill_bytes=fill,
        refinement_bytes=refinement,
        matrix_bytes=_MATRIX_BYTES * layers * items,
        fixed_bytes=_FIXED_BYTES,
    )


def fits(layers: int, items: int, packs: int, config: PackerConfig, budget_bytes: int = APP_BUDGET_BYTES) -> bool:
    """Whether the estimate is within ``budget_bytes``."""
    return estimate_memory(layers, items, packs, config).total_bytes <= budget_bytes


def max_layers_that_fit(items: int, packs: int, config: PackerConfig, budget_bytes: int = APP_BUDGET_BYTES,
                        limit: int = 1 << 24) -> int:
    """The most layers of ``items`` loads that fit (at most ``limit``); 0 if not one."""
    return _largest(lambda layers: fits(layers, items, packs, config, budget_bytes), limit)


def max_restarts_that_fit(layers: int, items: int, packs: int, config: PackerConfig,
                          budget_bytes: int = APP_BUDGET_BYTES, limit: int = 1 << 20) -> int:
    """The most restarts that fit at this size, the other settings kept (at most
    ``limit``); 0 if not even one does."""
    return _largest(lambda restarts: fits(layers, items, packs, _with_restarts(config, restarts), budget_bytes),
                    limit)


def check_fits(layers: int, items: int, packs: int, config: PackerConfig,
               budget_bytes: int = APP_BUDGET_BYTES) -> str | None:
    """None when the run fits ``budget_bytes``; otherwise a plain message: the
    estimate, what takes most of it, and what fits at this size (fewer layers,
    fewer restarts, or more packs; else more packs with fewer layers)."""
    estimate = estimate_memory(layers, items, packs, config)
    if estimate.total_bytes <= budget_bytes:
        return None
    parts = {
        "the greedy fills of the restarts": estimate.fill_bytes,
        f"the swap search between packs of {items // max(packs, 1)} items": estimate.refinement_bytes,
        "the placement and lower bounds of every layer": estimate.matrix_bytes,
    }
    options = []
    most_layers = max_layers_that_fit(items, packs, config, budget_bytes, limit=layers)
    if most_layers:
        options.append(f"at most {most_layers} layers")
    if config.num_restarts > 1:
        most_restarts = max_restarts_that_fit(layers, items, packs, config, budget_bytes, limit=config.num_restarts)
        if most_restarts:
            options.append(f"at most {most_restarts} restarts")
    more_packs = [more for more in range(packs + 1, items + 1) if items % more == 0]
    fewest_packs = next((more for more in more_packs if fits(layers, items, more, config, budget_bytes)), None)
    if fewest_packs is not None:
        options.append(f"{fewest_packs} packs")
    if not options:
        # No single change is enough. Fewer layers, and half the layers that would fit
        # with a single restart leaves room for some restarts; or smaller swap grids.
        one_restart = max_layers_that_fit(items, packs, _with_restarts(config, 1), budget_bytes, limit=layers)
        if config.num_restarts > 1 and one_restart:
            some_layers = max(1, one_restart // 2)
            restarts = max_restarts_that_fit(some_layers, items, packs, config, budget_bytes,
                                             limit=config.num_restarts)
            options.append(f"at most {some_layers} layers with at most {restarts} restarts")
        for more in more_packs:
            most_layers = max_layers_that_fit(items, more, config, budget_bytes, limit=layers)
            if most_layers:
                options.append(f"at most {most_layers} layers on {more} packs")
                break
    if options:
        advice = "What fits at this size: " + ", or ".join(options) + "."
    elif estimate.fixed_bytes >= budget_bytes:
        advice = f"No packing fits a budget this small: every run needs about {_size(estimate.fixed_bytes)}."
    else:
        advice = "Nothing fits with this many items: use fewer."
    return (f"Packing {layers} layers x {items} items into {packs} packs with these settings needs about "
            f"{_size(estimate.total_bytes)} of working memory, most of it for {max(parts, key=parts.get)}; "
            f"the budget is {_size(budget_bytes)}. {advice}")


def _with_restarts(config: PackerConfig, restarts: int) -> PackerConfig:
    return config.replace(num_restarts=restarts, num_refined=min(config.num_refined, restarts))


def _largest(fits_at: Callable[[int], bool], limit: int) -> int:
    """The largest x in 1..limit with fits_at(x), for a fits_at that holds up to some
    point and not beyond; 0 if fits_at(1) fails."""
    if limit < 1 or not fits_at(1):
        return 0
    low, high = 1, limit  # fits_at(low) holds
    while low < high:
        middle = (low + high + 1) // 2
        if fits_at(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _size(count: int) -> str:
    if count < 1024**3:
        return f"{count / 1024**2:.0f} MB"
    return f"{count / 1024**3:.1f} GB"
