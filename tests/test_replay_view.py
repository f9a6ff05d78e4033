"""What the Replay page computes from the library's replays: windows summed, no EPLB, the sweep table, the files."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.eplb.cluster import Cluster
from packviz.eplb.replay import ReplaySettings, pareto_front, recommend, replay
from packviz.eplb.replay_view import (
    SWEEP_COLUMNS,
    SweepJob,
    compare,
    default_grid,
    last_plan_files,
    no_eplb_balancedness,
    plans_npy,
    rewindow,
    summary_json,
    sweep_csv,
    sweep_rows,
)
from packviz.io.deploy import read_trtllm_yaml
from packviz.io.engines.sglang import read_sglang_json

loads = st.sampled_from([0.0, 1.0, 1.0, 2.0, 1e12])  # tie-heavy, zero-heavy, huge


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7), st.integers(1, 5), st.data())
def test_rewindow_keeps_every_load_and_sums_consecutive_windows(windows, rows, data):
    trace = torch.tensor(data.draw(st.lists(loads, min_size=windows * 2 * 3, max_size=windows * 2 * 3)),
                         dtype=torch.float64).reshape(windows, 2, 3)
    summed = rewindow(trace, rows)
    assert summed.shape == (-(-windows // rows), 2, 3)
    assert torch.equal(summed.sum(dim=0), trace.sum(dim=0))
    assert torch.equal(summed[0], trace[:rows].sum(dim=0))


def test_rewindow_refuses_an_empty_window():
    with pytest.raises(ValueError, match="at least 1 row"):
        rewindow(torch.ones(2, 1, 2), 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5), st.sampled_from([1, 2, 4]), st.data())
def test_no_eplb_is_the_contiguous_layout_scored_on_each_later_window(windows, gpus, data):
    trace = torch.tensor(data.draw(st.lists(loads, min_size=windows * 3 * 8, max_size=windows * 3 * 8)),
                         dtype=torch.float64).reshape(windows, 3, 8)
    served = no_eplb_balancedness(trace, gpus)
    assert served.shape == (windows - 1,)
    for index in range(1, windows):
        per_gpu = trace[index].reshape(3, gpus, 8 // gpus).sum(dim=2)
        moe = (trace.sum(dim=(0, 2)) > 0) & (trace[index].sum(dim=1) > 0)
        want = (per_gpu.mean(dim=1) / per_gpu.max(dim=1).values)[moe].mean() if moe.any() else torch.tensor(1.0)
        assert float(served[index - 1]) == pytest.approx(float(want))


def test_no_eplb_on_equal_loads_is_one_and_absent_when_experts_do_not_divide():
    assert torch.equal(no_eplb_balancedness(torch.ones(3, 2, 8), 4), torch.ones(2, dtype=torch.float64))
    assert no_eplb_balancedness(torch.ones(3, 2, 6), 4) is None


TRACE = torch.distributions.Gamma(0.5, 1.0).sample((10, 3, 8)).double() * 100
CLUSTER = Cluster(12, None, 1, 4, "global")


def test_the_sweep_table_and_csv_say_what_each_replay_served():
    results = [replay(TRACE, ReplaySettings(CLUSTER, planner=p, interval=i)) for p in ("last", "mean:4")
               for i in (1, 3)]
    rows = sweep_rows(results, 30.0)
    assert [r["served_balancedness"] for r in rows] == [r.mean_balancedness for r in results]
    assert [r["pareto"] for r in rows] == pareto_front(results, 30.0)
    assert [r["recommended"] for r in rows] == [r is recommend(results, 30.0) for r in results]
    read = list(csv.DictReader(io.StringIO(sweep_csv(rows))))
    assert list(read[0]) == list(SWEEP_COLUMNS) and len(read) == 4
    assert float(read[2]["gb_per_hour"]) == pytest.approx(results[2].gb_per_hour(30.0), rel=1e-5)
    assert sweep_rows([], 30.0) == []


def test_a_sweep_job_runs_the_grid_and_stop_keeps_what_finished():
    job = SweepJob(TRACE, ReplaySettings(CLUSTER), default_grid(["last"], [1, 2], ["interval", "drop"]))
    job.wait(120)
    assert not job.running and job.error is None and job.total == 4
    assert [r.settings.interval for r in job.results] == [1, 1, 2, 2]
    stopped = SweepJob(TRACE, ReplaySettings(CLUSTER), default_grid(["last"], list(range(1, 40)), ["interval"]))
    stopped.stop()
    stopped.wait(120)
    assert stopped.stopped and len(stopped.results) < stopped.total == 39
    failing = SweepJob(TRACE, ReplaySettings(CLUSTER), default_grid(["nonsense"], [1], ["interval"]))
    failing.wait(120)
    assert "nknown planner 'nonsense'" in failing.error and failing.results == []


def test_the_files_hold_the_plans_and_the_last_plan_of_the_moe_layers():
    trace = TRACE.clone()
    trace[:, 0] = 0  # a dense first layer
    comparison = compare(trace, ReplaySettings(CLUSTER, planner="mean:4"))
    result = comparison.result
    plans = np.load(io.BytesIO(plans_npy(result)), allow_pickle=False)
    assert plans.dtype == np.int64 and np.array_equal(plans, result.plans.numpy())
    files = last_plan_files(result, trace.sum(dim=(0, 2)) > 0)
    table = read_sglang_json(files["sglang"])["physical_to_logical_map"]
    assert table.shape == (3, 12) and torch.equal(table[1:], result.plans[-1][1:])
    assert json.loads(files["vllm"]) == result.plans[-1][1:].tolist()
    yaml_plan = read_trtllm_yaml(files["trtllm"])[0]
    assert torch.equal(yaml_plan, result.plans[-1][1:])
    summary = json.loads(summary_json(comparison, 30.0, 500, {"windows": 10}, 8))
    assert summary["mean_balancedness"] == pytest.approx(result.mean_balancedness)
    assert summary["last_window_balancedness"] == pytest.approx(comparison.baseline.mean_balancedness)
    assert "--eplb-rebalance-num-iterations 500" in summary["engine_flags"]["sglang"]
