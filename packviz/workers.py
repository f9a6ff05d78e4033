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
        are warm, runs go in the calling thread
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

from packviz.config import PackerConfig
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


def _warm_up() -> int:
    # The first run pays for torch's lazy set-up (kernels, allocator); pay it now.
    pack(torch.arange(8, dtype=torch.float64).reshape(1, 8), 2, "fast")
    return os.getpid()


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
            if _pool is None and _timer is None and worker_count() > 0:
                _timer = threading.Timer(after_s, start_workers)
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
    """True once the pool exists and every worker has warmed up."""
    with _lock:
        return _pool is not None and bool(_warm) and all(f.done() and f.exception() is None for f in _warm)


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
    if pool is not None and workers_ready():
        try:
            return pool.submit(pack, weight, num_packs, config, **pack_arguments).result()
        except BrokenProcessPool:
            _discard_pool(pool)
            start_workers()
    use_one_thread_here()
    return pack(weight, num_packs, config, **pack_arguments)


def ready_pool() -> concurrent.futures.Executor | None:
    """The worker pool once every worker is warm, for work other than ``pack`` (a replay, a sweep's
    replays); None while they start or with ``PACKVIZ_WORKERS=0`` (then run in the calling thread)."""
    start_workers()
    return _pool if worker_count() > 0 and workers_ready() else None
