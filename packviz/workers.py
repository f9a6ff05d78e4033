"""Packing for many users at once: ``pack()`` in worker processes of one thread each.

A Streamlit server runs every session's script as a thread of one process. Two
things then slow a run down: torch's intra-op threads spin while they wait, so a
run on two threads beside a busy core (another session, another process) waits on
a descheduled thread and takes several times longer; and the engine's many small
tensor operations hold the GIL between them, so sessions packing in threads of one
process queue on it. The model here: each run on one intra-op thread, in one of
``worker_count()`` processes (one per usable core, at most 8 unless
``PACKVIZ_WORKERS`` asks for more), queued first come first
served. N sessions on C cores then each wait about N/C runs, and a run beside a
busy core costs about what it costs on a quiet one.

    pack_in_worker(weight, num_packs, config, **pack_arguments) -> PackResult
        ``packviz.pack(weight, num_packs, config, ...)`` run in a worker; the same
        placement (the engine is deterministic whatever the thread count)
    start_workers(after_s=0.0) -> None
        one intra-op thread here too; starts the pool (after ``after_s`` seconds,
        in the background) and warms
        each worker (importing torch takes a second or two of a core); until they
        are warm, runs go in the calling thread. Warming up, each worker times a
        few small probe runs, which calibrate the run-time estimate
        (``packviz.cost``) to this machine; every run after teaches it too
    time_probes() -> [Measurement]
        the probe runs, timed in this process
    use_one_thread_here() -> None
        one intra-op thread for this process (process-wide in torch)

``PACKVIZ_WORKERS=0`` runs everything in the calling thread (on one intra-op thread).
The pages start the workers once their first run is over (``start_workers(after_s)``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from packviz import cost
from packviz.config import PRESETS, PackerConfig
from packviz.packer import PackResult, pack

_lock = threading.Lock()
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_warm: list[concurrent.futures.Future] = []
_timer: threading.Timer | None = None


# Each worker holds its own torch (some 300 MB) and its runs' memory: on a large
# machine the default stops here; PACKVIZ_WORKERS asks for more.
MAX_DEFAULT_WORKERS = 8


def worker_count() -> int:
    """Worker processes: ``PACKVIZ_WORKERS`` when set, else one per usable core, at
    most ``MAX_DEFAULT_WORKERS``."""
    configured = os.environ.get("PACKVIZ_WORKERS", "").strip()
    if configured:
        return max(0, int(configured))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, MAX_DEFAULT_WORKERS)


def use_one_thread_here() -> None:
    """One intra-op thread in this process. torch's setting is process-wide, so it is
    set once and left alone: changing it around one run would change it for every
    run that is in flight in another thread at the time."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _start_worker() -> None:
    use_one_thread_here()


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """A spawned child imports its parent's ``__main__`` again. Under Streamlit that
    module is the page script being run, which must not run in a worker: while the
    children start, ``__main__`` is an empty module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


# The probes: the default sample's layers into 32 and 16 packs, each kind of preset at two layer
# counts, so that the estimate learns both what a run pays once and what each layer adds: a few
# layers, then as many as a fifth of a second takes here (the layers' part then weighs at least
# as much as the rest, and is measured, not guessed). restarts-1swap runs with 256 restarts and 8
# refined: its fills and refinement in the same proportion, the same kind, its counts modelled.
PROBE_PACKS = (32, 16)
PROBES: tuple[tuple[PackerConfig, int], ...] = (
    (PRESETS["eplb"].config, 4),
    (PRESETS["fast"].config, 2),
    (PRESETS["best"].config, 2),
    (PRESETS["restarts-2swap"].config, 1),
    (PRESETS["restarts-1swap"].config.replace(num_restarts=256, num_refined=8), 1),
)
PROBE_CONFIGS: tuple[PackerConfig, ...] = tuple(config for config, _ in PROBES)
PROBE_SECONDS, PROBE_MOST_LAYERS = 0.2, 2048


def time_probes() -> list[cost.Measurement]:
    """The probe runs (some seconds in all on 2 cores), each timed by ``pack()``."""
    from packviz.data.samples import DEFAULT_SAMPLE, load_sample

    sample = load_sample(DEFAULT_SAMPLE).weight
    sample = sample.repeat(-(-PROBE_MOST_LAYERS // sample.shape[0]), 1)
    pack(sample[:4], PROBE_PACKS[0], "fast")  # torch's lazy set-up, not timed
    probes = []
    for packs in PROBE_PACKS:
        for config, first in PROBES:
            probes.append(cost.Measurement(first, sample.shape[1], packs, config,
                                           _quickest(sample[:first], packs, config)))
            layers = first * 4
            seconds = pack(sample[:layers], packs, config).elapsed_s
            while layers < PROBE_MOST_LAYERS and seconds < PROBE_SECONDS:
                layers *= 2
                seconds = pack(sample[:layers], packs, config).elapsed_s
            seconds = min(seconds, pack(sample[:layers], packs, config).elapsed_s)
            probes.append(cost.Measurement(layers, sample.shape[1], packs, config, seconds))
    return probes


def _quickest(weight: torch.Tensor, packs: int, config: PackerConfig, repeat_below_s: float = 2.0,
              spend_s: float = 0.15, most_runs: int = 8) -> float:
    """A run's time; a short one is run again (twice at least, and on while
    ``spend_s`` lasts, up to ``most_runs`` runs) and the quickest kept: a core taken
    away for a moment (another process, another session) doubles a run of some
    milliseconds."""
    seconds = spent = pack(weight, packs, config, seed=0).elapsed_s
    runs = 1
    while seconds < repeat_below_s and runs < most_runs and (runs < 2 or spent < spend_s):
        elapsed = pack(weight, packs, config, seed=0).elapsed_s
        seconds, spent, runs = min(seconds, elapsed), spent + elapsed, runs + 1
    return seconds


def calibrate_here() -> None:
    """Time the probes in this process and calibrate the estimate on them."""
    use_one_thread_here()
    cost.calibrate(time_probes())


def _warm_up() -> tuple[int, list[cost.Measurement]]:
    # The first run pays for torch's lazy set-up (kernels, allocator); pay it now,
    # timing the probes that calibrate the run-time estimate on the way.
    return os.getpid(), time_probes()


def start_workers(after_s: float = 0.0) -> None:
    """Start the worker pool (once per process) and warm every worker in the background.

    after_s: start it that many seconds from now, from a timer thread. The app's
    first page asks for a delay: spawning the workers imports torch twice more, which
    would take cores from the browser drawing that page's first charts.
    """
    global _pool, _timer
    # the process that hands runs to the workers does small tensor work of its own (metrics, figures)
    use_one_thread_here()
    if after_s > 0:
        with _lock:
            if _pool is None and _timer is None:
                # no workers to time the probes: this process times them, as late
                _timer = threading.Timer(after_s, start_workers if worker_count() > 0 else calibrate_here)
                _timer.daemon = True
                _timer.start()
        return
    with _lock:
        if _pool is not None or worker_count() == 0:
            return
        # spawn, not fork: forking a process whose OpenMP threads have run can hang the child
        _pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=worker_count(), mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker)
        with _bare_main():  # the children start on these first submissions
            _warm[:] = [_pool.submit(_warm_up) for _ in range(worker_count())]


def workers_ready() -> bool:
    """True once the pool exists and every worker has warmed up (the first time,
    the estimate is calibrated on the probes the workers timed)."""
    with _lock:
        ready = _pool is not None and bool(_warm) and all(f.done() and f.exception() is None for f in _warm)
        probes = [run for f in _warm for run in f.result()[1]] if ready and not cost.MODEL.calibrated else []
    if probes:
        cost.calibrate(probes)
    return ready


def _discard_pool(broken: concurrent.futures.ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
            _warm.clear()
    broken.shutdown(wait=False, cancel_futures=True)


def pack_in_worker(weight: torch.Tensor, num_packs: int, config: PackerConfig, **pack_arguments: Any) -> PackResult:
    """``pack(weight, num_packs, config, **pack_arguments)`` in a worker process.

    weight: [layers, items] CPU tensor. Runs in the calling thread, on one intra-op
    thread, while the workers are starting or when ``PACKVIZ_WORKERS=0``. A worker
    that dies (killed, out of memory) is replaced and the run repeated here.
    """
    start_workers()
    pool = _pool if worker_count() > 0 else None
    result = None
    if pool is not None and workers_ready():
        try:
            result = pool.submit(pack, weight, num_packs, config, **pack_arguments).result()
        except BrokenProcessPool:
            _discard_pool(pool)
            start_workers()
    if result is None:
        use_one_thread_here()
        result = pack(weight, num_packs, config, **pack_arguments)
    if not pack_arguments.get("trace_layers"):  # a traced run records events too: not the cost modelled
        cost.record_run(*weight.shape, num_packs, config, result.elapsed_s)
    return result


def ready_pool() -> concurrent.futures.Executor | None:
    """The worker pool once every worker is warm, for work other than ``pack`` (a replay, a sweep's
    replays); None while they start or with ``PACKVIZ_WORKERS=0`` (then run in the calling thread)."""
    start_workers()
    return _pool if worker_count() > 0 and workers_ready() else None
