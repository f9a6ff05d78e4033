"""Stage 2, pack: the one engine every preset configures, and the recorder it reports to."""

from packviz.engine.driver import (
    NUMPY_FILL_MAX_CELLS,
    REFINE_BLOCK_ELEMENTS,
    SINGLE_THREAD_MAX_CELLS,
    chunk_layers,
    resolve_device,
    run,
    scope_pair_count,
    threads_for,
    tie_window,
    to_units,
)

__all__ = [
    "NUMPY_FILL_MAX_CELLS",
    "REFINE_BLOCK_ELEMENTS",
    "SINGLE_THREAD_MAX_CELLS",
    "chunk_layers",
    "resolve_device",
    "run",
    "scope_pair_count",
    "threads_for",
    "tie_window",
    "to_units",
]
