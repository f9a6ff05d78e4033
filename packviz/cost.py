"""How long will a packing take? A rough estimate from the sizes, before running.

The app reruns a packing on every change of a knob while that answers within a
second or so; a run estimated longer waits for the user to ask for it. Only the
order of magnitude matters for that choice, so the model is three terms, each
calibrated on the default sample (58 layers x 288 items, 32 packs) on 2 CPU cores:

- the greedy fills: every restart places every item of every layer (about 1 us
  each: restarts-2swap's 256 fills take some 4 s, restarts-1swap's 2048 some 30 s);
- the refinement's swap search: each kept candidate scores the 1-swaps (k x k
  cells between packs of k items) and 2-swaps ((k choose 2)^2 cells) of every pack
  pair its scope joins (about 0.1 us a cell and iteration-free: the search is
  vectorised, and most candidates stop long before the cap; ``best`` takes ~3 s);
- a fixed cost per refinement iteration (about 5 ms: ``fast`` runs 60 of them in
  about 0.3 s whatever the size).

Pure: sizes and a PackerConfig in, seconds out; no torch work, no UI.
"""

from __future__ import annotations

from math import comb

from packviz.config import PackerConfig

FILL_SECONDS = 1e-6  # per (layer, restart, item)
SWAP_CELL_SECONDS = 1e-7  # per (layer, candidate, pack pair, swap cell)
ITERATION_SECONDS = 5e-3  # per refinement iteration, whatever the size
# Above this a run waits for a button instead of following every change.
SLOW_SECONDS = 1.0


def _pair_count(packs: int, config: PackerConfig) -> int:
    # The pack pairs one candidate scores per iteration, as engine.scope_pair_count
    # counts them (kept here so that this estimate imports no torch).
    if config.swap_scope == "extremes":
        return 1
    if config.swap_scope == "top-k":
        return min(packs, config.scope_k) ** 2
    if config.swap_scope == "heaviest-vs-all":
        return max(packs - 1, 0)
    return packs // 2 + packs - 1


def estimate_seconds(layers: int, items: int, packs: int, config: PackerConfig) -> float:
    """Rough wall time of ``pack()`` on [layers, items] loads into ``packs`` packs
    with ``config`` on 2 CPU cores; right within a factor of about 3."""
    per_pack = max(1, items // max(packs, 1))
    seconds = FILL_SECONDS * layers * config.num_restarts * items
    if config.refines and per_pack > 1 and packs > 1:
        cells = per_pack * per_pack if config.one_swap else 0
        cap = config.two_swap_max_pack_size
        if config.two_swap and (cap is None or per_pack <= cap):
            cells += comb(per_pack, 2) ** 2
        candidates = min(config.num_refined, config.num_restarts)
        seconds += SWAP_CELL_SECONDS * layers * candidates * _pair_count(packs, config) * cells
        seconds += ITERATION_SECONDS * config.max_iterations
    return seconds


def is_slow(layers: int, items: int, packs: int, config: PackerConfig, threshold_s: float = SLOW_SECONDS) -> bool:
    """Whether a run is estimated past ``threshold_s`` (then the app runs it on request)."""
    return estimate_seconds(layers, items, packs, config) > threshold_s
