"""How long will a packing take? An estimate from the sizes, before running, that
learns the machine it runs on.

The app reruns a packing on every change of a knob while that answers within a
second or so; a run estimated longer waits for the user to ask for it. The model
counts what a run does, each count with a cost in seconds:

- ``fill_steps``: the greedy fill places one item per step (the plain greedy is
  every preset's restart 0), a fixed cost a step whatever the layers and restarts;
- ``fill_cells``: every restart places every item of every layer;
- ``merges``: a differencing fill merges its rows k - 1 times (k items per pack),
  each merge one vectorised step over every restart of every layer: a cost a
  merge, whatever the layers and restarts (their rows are the fill's cells);
- ``swap_cells`` and ``paired_cells``: each refinement iteration, each kept
  candidate scores the 1-swaps (k x k) and the 2-swaps (sorted pair sums, about
  P log2 P for P = k choose 2 pairs of items) of each pack pair its scope joins;
  the ``paired`` scope scores many small pairs at once and costs less a cell;
- ``runs``: a fixed cost a run.

The costs a unit (``REFERENCE_COSTS``) were fitted on 25 runs of the five presets
at five sizes on one machine, then scaled by the speed its probes later measured
there (0.25: the code had got faster), a merge's set from ``fast`` at 2 to 64
restarts and the paired cells' refitted against the fills'; uncalibrated, they
are that machine's estimate.
Two things then make the estimate this machine's:

- ``calibrate(measurements)``: a few small probe runs timed where the app runs
  (``packviz.workers`` times them as its workers warm up) set ``speed``, how much
  slower or faster this machine is than the reference;
- ``record_run(...)``: every run the app makes is timed, and the ratio of its time
  to the model's is kept per kind of packer (a config's fill, moves, scope, score
  and iteration cap, whatever its counts) and size; an estimate takes the ratio of
  the nearest size its kind has run at, so a kind the model misjudges is corrected
  from its first run on, and a size run before is estimated from itself.
- A kind timed at two layer counts of one shape (items, packs) splits its time
  into a part a run pays once (``fill_steps``, ``merges``, ``runs``: Python's
  loops over the items, merges and iterations) and a part each layer pays (the cells), each with its own
  correction: how the two compare differs from machine to machine (2x between the
  reference and a laptop), and a ratio learned at 4 layers misjudged 128 by 2.5x.

Pure: sizes, a PackerConfig and timings in, seconds out; no torch work, no UI.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable
from math import comb

from packviz.config import PackerConfig

# Seconds a unit of each count on the reference machine (2 shared CPU cores, one thread a run), as the
# probes measured it last (speed 1 there): what an estimate says before this machine's probes are in.
REFERENCE_COSTS: dict[str, float] = {
    "fill_steps": 2.4e-5,
    "fill_cells": 3.5e-7,
    "merges": 5e-4,
    "swap_cells": 6.5e-9,
    "paired_cells": 1.5e-8,
    "runs": 7e-4,
}
# Above this a run waits for a button instead of following every change. An
# estimate within 2x of the run means every run under a second starts at once.
SLOW_SECONDS = 2.0
# How much a new run's ratio moves the kept one (in log space): the newest counts half.
LEARNING_RATE = 0.5


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


def work_counts(layers: int, items: int, packs: int, config: PackerConfig) -> dict[str, float]:
    """What packing [layers, items] into ``packs`` with ``config`` does, counted in
    the units of ``REFERENCE_COSTS``."""
    per_pack = max(1, items // max(packs, 1))
    counts = dict.fromkeys(REFERENCE_COSTS, 0.0)
    counts["runs"] = 1.0
    counts["fill_steps"] = float(items) if config.start != "snake" or config.num_restarts > 1 else 0.0
    counts["fill_cells"] = float(layers * config.num_restarts * items)
    counts["merges"] = float(per_pack - 1) if config.start == "differencing" else 0.0
    if config.refines and per_pack > 1 and packs > 1:
        cells = float(per_pack * per_pack) if config.one_swap else 0.0
        cap = config.two_swap_max_pack_size
        if config.two_swap and (cap is None or per_pack <= cap):
            pairs_of_items = comb(per_pack, 2)
            cells += pairs_of_items * max(1.0, math.log2(pairs_of_items))
        candidates = min(config.num_refined, config.num_restarts)
        scored = layers * candidates * _pair_count(packs, config) * cells * config.max_iterations
        counts["paired_cells" if config.swap_scope == "paired" else "swap_cells"] = float(scored)
    return counts


# The counts a run pays once whatever its layers; the rest grow with the layers.
FIXED_COUNTS = ("fill_steps", "merges", "runs")


def packer_kind(config: PackerConfig) -> tuple:
    """What a run's cost per unit depends on beyond the counts: the fill, the moves
    searched, their scope and score, how candidates are chosen and when they stop."""
    # max_iterations is part of the kind, not only a count: refinement mostly stops before the cap
    # (no improving move, or the lower bound reached), so 80 iterations cost far less than eight
    # times 10, and a kind learned at one cap misjudges another (fast and best differ only there).
    return (config.start, config.one_swap, config.two_swap, config.two_swap_when_stuck, config.swap_scope,
            config.swap_score, config.select_by, config.stop_at_lower_bound, config.refines,
            config.max_iterations if config.refines else 0)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One timed run: its sizes, config and seconds."""

    layers: int
    items: int
    packs: int
    config: PackerConfig
    seconds: float


class CostModel:
    """The reference costs, scaled by this machine's ``speed`` and corrected per
    packer kind by the runs seen. Safe to share between threads."""

    def __init__(self, costs: dict[str, float] | None = None) -> None:
        self.costs = dict(costs or REFERENCE_COSTS)
        self.speed = 1.0
        self.calibrated = False
        # per packer kind: (layers, items, packs) -> log of a run's time over the model's
        self._log_ratio: dict[tuple, dict[tuple[int, int, int], float]] = {}
        # per packer kind and size: the model's two parts (once, layers) for the config last run there
        self._parts: dict[tuple, dict[tuple[int, int, int], tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def model_seconds(self, layers: int, items: int, packs: int, config: PackerConfig) -> float:
        """The counts times the reference costs times ``speed``, before any run's correction."""
        return sum(self._model_parts(layers, items, packs, config))

    def _model_parts(self, layers: int, items: int, packs: int, config: PackerConfig) -> tuple[float, float]:
        # (what a run pays once, what its layers pay), in model seconds
        counts = work_counts(layers, items, packs, config)
        fixed = sum(self.costs[name] * counts[name] for name in FIXED_COUNTS)
        layered = sum(self.costs[name] * count for name, count in counts.items() if name not in FIXED_COUNTS)
        return self.speed * fixed, self.speed * layered

    def estimate(self, layers: int, items: int, packs: int, config: PackerConfig) -> float:
        """Seconds ``pack()`` is expected to take here."""
        size = (layers, items, packs)
        with self._lock:
            seen = dict(self._log_ratio.get(packer_kind(config), {}))
            parts = dict(self._parts.get(packer_kind(config), {}))
        split = self._split_estimate(size, config, seen, parts)
        if split is not None:
            return split
        nearest = min(seen, key=lambda other: _distance(other, size), default=None)
        correction = math.exp(seen[nearest]) if nearest is not None else 1.0
        return self.model_seconds(layers, items, packs, config) * correction

    def _split_estimate(self, size: tuple[int, int, int], config: PackerConfig,
                        seen: dict[tuple[int, int, int], float],
                        parts: dict[tuple[int, int, int], tuple[float, float]]) -> float | None:
        # Two runs of this shape at other layer counts (the nearest below and above where there are
        # such, else the two nearest) fix a correction for each part; None where there are not two,
        # or where the two disagree so much that a part comes out negative (noise, not a machine).
        # A size run before is one of the two, so a config run before at that size is estimated
        # from its own time; another config of the kind at that size (more restarts, say) has its
        # layers' part scaled.
        layers, items, packs = size
        counts = sorted({other[0] for other in seen if other[1:] == (items, packs)})
        if len(counts) < 2:
            return None
        below = [count for count in counts if count < layers]
        above = [count for count in counts if count > layers]
        if below and above and layers not in counts:
            pair = (below[-1], above[0])
        else:
            pair = tuple(sorted(counts, key=lambda count: abs(math.log(count / layers)))[:2])
        rows = []
        for count in pair:
            # the parts of the config that ran there, which may be another of the kind
            fixed, layered = parts[(count, items, packs)]
            rows.append((fixed, layered, (fixed + layered) * math.exp(seen[(count, items, packs)])))
        (f1, l1, t1), (f2, l2, t2) = rows
        determinant = f1 * l2 - f2 * l1
        if determinant == 0:
            return None
        fixed_correction = (t1 * l2 - t2 * l1) / determinant
        layer_correction = (f1 * t2 - f2 * t1) / determinant
        if fixed_correction <= 0 or layer_correction <= 0:
            return None
        fixed, layered = self._model_parts(layers, items, packs, config)
        return fixed * fixed_correction + layered * layer_correction

    def observe(self, run: Measurement) -> None:
        """Learn from a timed run: its kind's correction moves towards its ratio."""
        predicted = self.model_seconds(run.layers, run.items, run.packs, run.config)
        if predicted <= 0 or not run.seconds > 0 or not math.isfinite(run.seconds):
            return
        ratio = math.log(run.seconds / predicted)
        size = (run.layers, run.items, run.packs)
        with self._lock:
            seen = self._log_ratio.setdefault(packer_kind(run.config), {})
            kept = seen.get(size)
            seen[size] = ratio if kept is None else kept + LEARNING_RATE * (ratio - kept)
            self._parts.setdefault(packer_kind(run.config), {})[size] = self._model_parts(*size, run.config)

    def calibrate(self, runs: Iterable[Measurement]) -> None:
        """Set ``speed`` from probe runs timed here (the geometric mean of their
        ratios to the reference model), then learn each probe's kind from it."""
        runs = [run for run in runs if run.seconds > 0 and math.isfinite(run.seconds)]
        if not runs:
            return
        with self._lock:
            self.speed = 1.0
            self._log_ratio.clear()
            self._parts.clear()
        logs = [math.log(run.seconds / self.model_seconds(run.layers, run.items, run.packs, run.config))
                for run in runs]
        with self._lock:
            self.speed = math.exp(sum(logs) / len(logs))
            self.calibrated = True
        for run in runs:
            self.observe(run)


def _distance(size: tuple[int, int, int], other: tuple[int, int, int]) -> float:
    # Sizes far apart in ratio, not in difference: 2 and 4 layers are as far as 29 and 58.
    return sum(abs(math.log(max(a, 1) / max(b, 1))) for a, b in zip(size, other))


MODEL = CostModel()


def estimate_seconds(layers: int, items: int, packs: int, config: PackerConfig) -> float:
    """Expected wall time of ``pack()`` on [layers, items] loads into ``packs`` packs
    with ``config``, on one thread of this machine (see ``CostModel``)."""
    return MODEL.estimate(layers, items, packs, config)


def is_slow(layers: int, items: int, packs: int, config: PackerConfig, threshold_s: float | None = None) -> bool:
    """Whether a run is estimated past ``threshold_s`` (default ``SLOW_SECONDS``;
    then the app runs it on request)."""
    return estimate_seconds(layers, items, packs, config) > (SLOW_SECONDS if threshold_s is None else threshold_s)


def record_run(layers: int, items: int, packs: int, config: PackerConfig, seconds: float) -> None:
    """Teach the process's model a run's time."""
    MODEL.observe(Measurement(layers, items, packs, config, seconds))


def calibrate(runs: Iterable[Measurement]) -> None:
    """Calibrate the process's model on probe runs timed on this machine."""
    MODEL.calibrate(runs)
