"""pack() in worker processes: the same placements and traces as in the calling thread."""

import os
import signal
import sys
import time
import types

import pytest
import torch

from packviz import pack, resolve_config, workers


def _wait_until_ready(timeout_s: float = 60.0) -> None:
    workers.start_workers()
    deadline = time.monotonic() + timeout_s
    while not workers.workers_ready():
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setenv("PACKVIZ_WORKERS", "2")
    if workers._pool is not None:  # one a page test started, with the default count
        workers._discard_pool(workers._pool)
    _wait_until_ready()
    yield
    if workers._pool is not None:
        workers._discard_pool(workers._pool)


def _loads(layers: int = 3, items: int = 24, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # tie-heavy whole numbers: where a thread-count dependence would show first
    return torch.randint(0, 6, (layers, items), generator=generator).double()


def test_a_worker_gives_the_placement_and_trace_of_the_calling_thread(two_workers):
    weight = _loads()
    config = resolve_config("best", seed=3)
    here = pack(weight[1:2], 4, config, seed=3, layer_ids=[1], trace_layers=[0])
    there = workers.pack_in_worker(weight[1:2], 4, config, seed=3, layer_ids=[1], trace_layers=[0])
    assert torch.equal(here.pack_index, there.pack_index)
    assert torch.equal(here.rank_in_pack, there.rank_in_pack)
    assert here.traces[0] == there.traces[0]


def test_runs_go_to_the_workers_once_they_are_warm(two_workers):
    pids = {workers._pool.submit(os.getpid).result() for _ in range(8)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_a_dead_worker_is_replaced_and_the_run_still_answers(two_workers):
    weight = _loads(seed=1)
    config = resolve_config("fast")
    for pid in {workers._pool.submit(os.getpid).result() for _ in range(4)}:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    result = workers.pack_in_worker(weight, 4, config)  # answered in this thread while the pool restarts
    assert torch.equal(result.pack_index, pack(weight, 4, config).pack_index)
    _wait_until_ready()
    assert torch.equal(workers.pack_in_worker(weight, 4, config).pack_index, result.pack_index)


def test_no_workers_runs_here_on_one_thread(monkeypatch):
    monkeypatch.setenv("PACKVIZ_WORKERS", "0")
    before = torch.get_num_threads()
    try:
        weight = _loads(seed=2)
        ran_in = []
        monkeypatch.setattr(workers, "pack", lambda *a, **k: ran_in.append(os.getpid()) or pack(*a, **k))
        result = workers.pack_in_worker(weight, 6, resolve_config("fast"))
        assert ran_in == [os.getpid()]
        assert torch.get_num_threads() == 1
        assert torch.equal(result.pack_index, pack(weight, 6, "fast").pack_index)
    finally:
        torch.set_num_threads(before)


def test_a_delayed_start_starts_the_pool_later_and_once(monkeypatch):
    monkeypatch.setenv("PACKVIZ_WORKERS", "1")
    monkeypatch.setattr(workers, "_timer", None)
    assert workers._pool is None
    workers.start_workers(after_s=0.3)
    workers.start_workers(after_s=0.3)  # a second page's run asks again: still one timer
    assert workers._pool is None and workers._timer is not None
    _wait_until_ready()
    try:
        assert workers._pool._max_workers == 1
    finally:
        workers._discard_pool(workers._pool)


def test_workers_start_where_main_is_a_script_that_must_not_run_again(monkeypatch, tmp_path):
    # Under Streamlit, __main__ is the page script: a spawned child would run it again.
    ran = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(ran)!r}, 'w').close()\nraise SystemExit('a page must not run in a worker')\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    monkeypatch.setenv("PACKVIZ_WORKERS", "1")
    if workers._pool is not None:
        workers._discard_pool(workers._pool)
    _wait_until_ready()
    try:
        assert not ran.exists()
        assert sys.modules["__main__"] is page
    finally:
        workers._discard_pool(workers._pool)


def test_one_worker_per_usable_core_up_to_a_cap_unless_configured(monkeypatch):
    monkeypatch.delenv("PACKVIZ_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert workers.worker_count() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert workers.worker_count() == workers.MAX_DEFAULT_WORKERS
    monkeypatch.setenv("PACKVIZ_WORKERS", "16")
    assert workers.worker_count() == 16


def test_warm_workers_calibrate_the_estimate_and_every_run_teaches_it(monkeypatch, two_workers):
    from packviz import cost

    model = cost.CostModel()
    monkeypatch.setattr(cost, "MODEL", model)
    workers._discard_pool(workers._pool)
    _wait_until_ready()  # new workers, whose probes calibrate the new model
    assert model.calibrated
    weight = _loads(layers=5, items=36, seed=4)
    config = resolve_config("best")
    result = workers.pack_in_worker(weight, 6, config)
    assert model.estimate(5, 36, 6, config) == pytest.approx(result.elapsed_s)
