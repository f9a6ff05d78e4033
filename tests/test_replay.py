"""Look-ahead planners (packviz.eplb.forecast), the replay loop and sweep (packviz.eplb.replay), ``packviz replay``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packviz.cli import main
from packviz.eplb.cluster import Cluster, check_plan, gpu_load, replica_counts
from packviz.eplb.forecast import (
    AutoPlanner,
    LookAheadPlanner,
    default_candidates,
    make_planner,
    robust_swaps,
    shares,
)
from packviz.eplb.over_time import over_time
from packviz.eplb.replan import count_moves
from packviz.eplb.replay import (
    ReplayResult,
    ReplaySettings,
    engine_flags,
    pareto_front,
    recommend,
    replay,
    served_balancedness,
    sweep,
)

GLOBAL = Cluster(12, None, 1, 4, "global")
HIERARCHICAL = Cluster(16, 4, 2, 4, "hierarchical")
NAMES = ["last", "mean:3", "ema:1.5", "mean_sd:3", "robust:3", "auto"]


def drifting(windows: int = 7, layers: int = 3, experts: int = 8, seed: int = 0) -> torch.Tensor:
    """[windows, layers, experts] whole-number loads with a drifting hot set."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(layers, experts, generator=generator, dtype=torch.float64) * 3
    out = []
    for _ in range(windows):
        base = base + torch.randn(layers, experts, generator=generator, dtype=torch.float64) * 0.4
        out.append(torch.poisson(200 * torch.softmax(base, dim=1), generator=generator))
    return torch.stack(out)


def run_planner(name: str, trace: torch.Tensor, cluster: Cluster) -> list[torch.Tensor]:
    planner = make_planner(name, cluster)
    plans, previous = [], None
    for index in range(trace.shape[0] - 1):
        previous = planner(trace[:index + 1], previous)
        plans.append(previous)
    return plans


@pytest.mark.parametrize("cluster", [GLOBAL, HIERARCHICAL], ids=["global", "hierarchical"])
@pytest.mark.parametrize("name", NAMES)
def test_every_planner_keeps_its_policy(name, cluster):
    trace = drifting()
    for plan in run_planner(name, trace, cluster):
        assert plan.dtype == torch.int64 and tuple(plan.shape) == (3, cluster.num_replicas)
        checks = check_plan(plan, 8, cluster)
        assert checks.ok, checks.sentences()


@pytest.mark.parametrize("name", NAMES)
def test_one_window_and_a_trace_shorter_than_k(name):
    trace = drifting(windows=2)
    for cluster in (GLOBAL, HIERARCHICAL):
        planner = make_planner(name, cluster)
        first = planner(trace[:1], None)
        assert check_plan(first, 8, cluster).ok
        # with two windows seen a planner of K = 3 or 8 works on what there is
        second = planner(trace[:2], first)
        assert check_plan(second, 8, cluster).ok


@pytest.mark.parametrize("name", NAMES)
def test_zero_layers_and_tie_heavy_loads(name):
    trace = torch.full((4, 3, 8), 5.0, dtype=torch.float64)
    trace[:, 1] = 0                                  # a dense layer
    trace[2, 2] = 0                                  # a layer silent in one window
    for cluster in (GLOBAL, HIERARCHICAL):
        plans = run_planner(name, trace, cluster)
        assert all(check_plan(plan, 8, cluster).ok for plan in plans)
        assert torch.equal(replica_counts(plans[-1][1:2], 8).clamp_max(1), torch.ones(1, 8, dtype=torch.int64))


def test_forecasts_follow_their_definitions():
    trace = torch.tensor([[[1.0, 3.0]], [[3.0, 1.0]], [[10.0, 30.0]]], dtype=torch.float64)
    cluster = Cluster(2, None, 1, 2, "global")
    assert torch.allclose(LookAheadPlanner(cluster, "last").forecast(trace), torch.tensor([[0.25, 0.75]],
                                                                                          dtype=torch.float64))
    mean = LookAheadPlanner(cluster, "mean", window_count=2).forecast(trace)
    assert torch.allclose(mean, torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    # the windows are shares: a ten times busier window weighs the same
    assert torch.allclose(shares(trace)[2], shares(trace)[0])
    sized = LookAheadPlanner(cluster, "mean_sd", window_count=2, z=1.0).forecast(trace)
    assert torch.allclose(sized, torch.tensor([[0.75, 0.75]], dtype=torch.float64))
    ema = LookAheadPlanner(cluster, "ema", half_life=1.0).forecast(trace)
    # weights 1/7, 2/7, 4/7 for ages 2, 1, 0
    expected = (torch.tensor([0.25, 0.75]) * 5 / 7 + torch.tensor([0.75, 0.25]) * 2 / 7).double()
    assert torch.allclose(ema[0], expected)


def test_make_planner_names_and_bad_names():
    assert make_planner("robust:4", GLOBAL).window_count == 4
    assert make_planner("mean_sd:6:1.5", GLOBAL).z == 1.5
    assert make_planner("ema:3", GLOBAL).half_life == 3.0
    assert isinstance(make_planner("auto", GLOBAL), AutoPlanner)
    for bad in ("median", "mean:0", "ema:-1", "robust:x", "last:2"):
        with pytest.raises(ValueError, match="unknown planner"):
            make_planner(bad, GLOBAL)


def scenario_peak(scenarios: torch.Tensor, plan: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    return torch.stack([gpu_load(s, plan, cluster).amax(dim=1) for s in scenarios]).mean(dim=0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from(["ties", "zeros", "skewed", "huge"]), st.booleans())
def test_robust_swaps_never_raise_the_scenarios_mean_peak(seed, shape, hierarchical):
    generator = torch.Generator().manual_seed(seed)
    cluster = HIERARCHICAL if hierarchical else GLOBAL
    if shape == "ties":
        scenarios = torch.randint(1, 3, (4, 2, 8), generator=generator).double()
    elif shape == "zeros":
        mask = torch.rand(4, 2, 8, generator=generator) < 0.3
        scenarios = torch.randint(0, 5, (4, 2, 8), generator=generator).double() * mask
    elif shape == "huge":
        scenarios = torch.rand(4, 2, 8, generator=generator, dtype=torch.float64) * 1e15
    else:
        scenarios = torch.rand(4, 2, 8, generator=generator, dtype=torch.float64) ** 4 * 100
    start = make_planner("mean:4", cluster)(scenarios, None)
    swapped = robust_swaps(shares(scenarios), start, cluster)
    assert check_plan(swapped, 8, cluster).ok
    assert torch.equal(replica_counts(swapped, 8), replica_counts(start, 8))
    before = scenario_peak(shares(scenarios), start, cluster)
    after = scenario_peak(shares(scenarios), swapped, cluster)
    assert bool((after <= before * (1 + 1e-12) + 1e-300).all())
    # a budget of moves from the plan in place holds per layer
    budgeted = robust_swaps(shares(scenarios), start, cluster, prior=start, max_moves=1)
    assert int(count_moves(start, budgeted, cluster.num_gpus, cluster.num_nodes).total.max()) <= 1


def test_robust_placement_beats_the_mean_plan_on_its_scenarios():
    trace = drifting(windows=6, layers=4, experts=16, seed=3)
    cluster = Cluster(20, None, 1, 4, "global")
    mean_plan = make_planner("mean:6", cluster)(trace, None)
    robust_plan = make_planner("robust:6", cluster)(trace, None)
    scenarios = shares(trace)
    assert float(scenario_peak(scenarios, robust_plan, cluster).mean()) < \
        float(scenario_peak(scenarios, mean_plan, cluster).mean())


@pytest.mark.parametrize("name", ["auto", "robust:3", "mean:3", "ema:2", "last"])
def test_plans_never_depend_on_later_windows(name):
    trace = drifting(windows=8, seed=5)
    changed = trace.clone()
    changed[5:] = torch.flip(changed[5:], dims=[2]) * 3 + 1
    for cluster in (GLOBAL, HIERARCHICAL):
        settings_ = ReplaySettings(cluster, planner=name)
        first = replay(trace, settings_).plans
        second = replay(changed, settings_).plans
        # row i is made from windows 0..i: rows 0..4 saw no changed window
        assert torch.equal(first[:5], second[:5])
        assert not torch.equal(first, second)


def test_auto_planner_cache_follows_the_windows_it_is_given():
    trace = drifting(windows=6, seed=2)
    planner = make_planner("auto", GLOBAL)
    fresh = make_planner("auto", GLOBAL)
    planner(trace[:5] * 2 + 7, None)                 # other windows first: the cache must not leak into the next
    assert torch.equal(planner(trace[:4], None), fresh(trace[:4], None))


def test_auto_picks_the_candidate_that_served_best_so_far():
    cluster = GLOBAL
    # two alternating regimes: the plan on the last window replicates the wrong expert, the mean of two both
    a = torch.tensor([[100.0, 1, 1, 1, 1, 1, 1, 1]])
    b = torch.tensor([[1.0, 1, 1, 1, 1, 1, 1, 100]])
    trace = torch.stack([a, b] * 5).double()
    candidates = [LookAheadPlanner(cluster, "last"), LookAheadPlanner(cluster, "mean", window_count=2)]
    auto = AutoPlanner(cluster, candidates)
    assert auto.pick(trace[:1]).kind == "last"           # nothing to backtest: the first candidate
    assert auto.pick(trace[:6]).kind == "mean"


def test_over_time_hands_history_to_planners_that_see_it():
    trace = drifting(windows=4)
    shapes = []

    def looking(seen, previous):
        shapes.append(tuple(seen.shape))
        return make_planner("last", GLOBAL)(seen, previous)
    looking.sees_history = True
    runs = over_time(trace, GLOBAL, {"looking": looking, "robust": make_planner("robust:2", GLOBAL),
                                     "one window": lambda w, previous: make_planner("last", GLOBAL)(w, previous)})
    assert shapes == [(1, 3, 8), (2, 3, 8), (3, 3, 8)]
    assert torch.equal(torch.stack(runs["looking"].plans), torch.stack(runs["one window"].plans))
    assert runs["robust"].balancedness.shape == (3,)


def test_replay_scores_each_plan_on_the_window_it_served():
    trace = drifting(windows=6)
    result = replay(trace, ReplaySettings(GLOBAL, planner="last"))
    assert result.plans.shape == (5, 3, 12) and result.plans.dtype == torch.int64
    for index in range(5):
        expected = served_balancedness(trace[index + 1], result.plans[index], GLOBAL)
        assert result.balancedness[index].item() == pytest.approx(expected)
        assert torch.equal(result.plans[index], make_planner("last", GLOBAL)(trace[:index + 1], None))
    assert result.replanned.all() and result.replans == 5


def test_dense_layers_are_left_out_of_the_served_mean():
    trace = drifting(windows=4)
    dense = torch.cat([torch.zeros(4, 1, 8, dtype=torch.float64), trace], dim=1)
    plain = replay(trace, ReplaySettings(GLOBAL, planner="mean:2"))
    with_dense = replay(dense, ReplaySettings(GLOBAL, planner="mean:2"))
    assert torch.allclose(plain.balancedness, with_dense.balancedness)


def test_interval_triggers_chunks_and_move_budget():
    trace = drifting(windows=9, layers=4, seed=7)
    every_third = replay(trace, ReplaySettings(GLOBAL, planner="last", interval=3))
    assert every_third.replanned.tolist() == [True, False, False, True, False, False, True, False]
    assert torch.equal(every_third.plans[1], every_third.plans[0])
    never = replay(trace, ReplaySettings(GLOBAL, planner="last", trigger="utilization", utilization_threshold=0.0))
    assert never.replans == 1 and bool((never.plans == never.plans[0]).all())
    drop = replay(trace, ReplaySettings(GLOBAL, planner="last", trigger="drop", drop_floor=0.0, drop_ratio=0.0))
    assert drop.replans == 1
    chunked = replay(trace, ReplaySettings(GLOBAL, planner="last", layers_per_chunk=3))
    # the second plan goes in over two windows: layers 0-2, then layer 3; no new plan meanwhile
    assert chunked.replanned.tolist()[:3] == [True, True, False]
    assert torch.equal(chunked.plans[1][3], chunked.plans[0][3])
    budget = replay(trace, ReplaySettings(GLOBAL, planner="robust:3", max_moves=1))
    for index in range(1, 8):
        assert int(count_moves(budget.plans[index - 1], budget.plans[index], 4).total.max()) <= 1


def test_replay_reports_moves_bytes_and_stall():
    trace = drifting(windows=5)
    result = replay(trace, ReplaySettings(Cluster(12, None, 2, 4, "global"), planner="last", expert_bytes=10**9))
    assert result.moved[0] == 0 and result.gb_moved[0] == 0
    assert bool((result.gb_moved == result.moved.double()).all())
    assert bool((result.stall_s[result.moved > 0] > 0).all())
    summary = result.summary(window_s=10.0)
    assert summary["gb_per_hour"] == pytest.approx(float(result.gb_moved.sum()) / (4 * 10.0) * 3600)
    assert 0 < summary["moved_fraction_per_replan"] <= 1
    json.dumps(summary)


def fake(balancedness: float, gb: float) -> ReplayResult:
    return ReplayResult(ReplaySettings(GLOBAL), torch.zeros(2, 1, 12, dtype=torch.int64),
                        torch.tensor([balancedness, balancedness]), torch.tensor([True, True]),
                        torch.tensor([0, 1]), torch.tensor([0.0, gb]), torch.zeros(2), torch.zeros(2))


def test_pareto_front_and_recommendation():
    results = [fake(0.80, 10), fake(0.85, 20), fake(0.84, 30), fake(0.851, 200), fake(0.90, 400)]
    assert pareto_front(results, window_s=1.0) == [True, True, False, True, True]
    assert recommend(results, 1.0).mean_balancedness == pytest.approx(0.90)
    # within 0.002 of the best under the budget, the cheaper one
    assert recommend(results, 1.0, max_gb_per_hour=200 * 3600 / 2).gb_per_hour(1.0) == pytest.approx(20 * 3600 / 2)
    with pytest.raises(ValueError, match="GB an hour"):
        recommend(results, 1.0, max_gb_per_hour=1.0)


def test_sweep_reports_progress_and_stops_keeping_what_finished():
    trace = drifting(windows=4)
    base = ReplaySettings(GLOBAL, planner="last")
    seen = []
    results = sweep(trace, base, {"interval": [1, 2], "num_replicas": [8, 12]},
                    progress=lambda done, total, result: seen.append((done, total)))
    assert [r.settings.interval for r in results] == [1, 1, 2, 2]
    assert [r.settings.cluster.num_replicas for r in results] == [8, 12, 8, 12]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    stopped = sweep(trace, base, {"interval": [1, 2, 3]}, should_stop=lambda: len(seen) >= 5,
                    progress=lambda done, total, result: seen.append(done))
    assert len(stopped) == 1
    with ThreadPoolExecutor(2) as pool:
        pooled = sweep(trace, base, {"interval": [1, 2]}, executor=pool)
    assert [float(r.mean_balancedness) for r in pooled] == [float(r.mean_balancedness) for r in results[1::2]]
    with pytest.raises(ValueError, match="slots"):
        sweep(trace, base, {"num_replicas": [7]})


def test_engine_flags_name_each_engines_settings():
    settings_ = ReplaySettings(Cluster(288, 8, 4, 32), planner="last", interval=3, trigger="utilization",
                               utilization_threshold=0.8, layers_per_chunk=4)
    flags = engine_flags(settings_, window_passes=1000, num_logical=256)
    assert flags.sglang == ["--enable-eplb", "--ep-num-redundant-experts 32", "--eplb-rebalance-num-iterations 3000",
                            "--eplb-rebalance-layers-per-chunk 4", "--eplb-min-rebalancing-utilization-threshold 0.8"]
    assert flags.vllm_eplb_config == {"window_size": 1000, "step_interval": 3000, "num_redundant_experts": 32}
    assert "num_slots: 288" in flags.trtllm_yaml and "layer_updates_per_iter: 4" in flags.trtllm_yaml
    assert not any("planner" in note for note in flags.notes)
    assert any("planner" in note for note in engine_flags(ReplaySettings(GLOBAL), 10, 8).notes)


def test_default_candidates_cover_every_kind():
    kinds = {candidate.kind for candidate in default_candidates(GLOBAL)}
    assert kinds == {"last", "mean", "ema", "mean_sd", "robust"}


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.fixture()
def trace_file(tmp_path):
    path = tmp_path / "trace.npy"
    np.save(path, drifting(windows=6).numpy())
    return path


@pytest.mark.parametrize("extra", [[], ["--planner", "last"], ["--groups", "4", "--nodes", "2"],
                                   ["--window", "2", "--planner", "robust:2"]])
def test_cli_writes_plans_and_summary(trace_file, tmp_path, extra, capsys):
    plans_path, json_path = tmp_path / "plans.npy", tmp_path / "summary.json"
    slots = "16" if "--groups" in extra else "12"
    assert main(["replay", str(trace_file), "--slots", slots, "--gpus", "4", *extra,
                 "--plans-out", str(plans_path), "--json", str(json_path)]) == 0
    plans = np.load(plans_path, allow_pickle=False)
    windows = 3 if "--window" in extra else 6
    assert plans.dtype == np.int64 and plans.shape == (windows - 1, 3, int(slots))
    cluster = HIERARCHICAL if "--groups" in extra else GLOBAL
    assert all(check_plan(torch.from_numpy(plan), 8, cluster).ok for plan in plans)
    summary = json.loads(json_path.read_text())
    for key in ("mean_balancedness", "balancedness", "replans", "moved_fraction_per_replan", "gb_per_hour",
                "mean_stall_s_per_replan", "last_window_balancedness", "gain_over_last_window", "engine_flags",
                "settings", "trace"):
        assert key in summary
    assert len(summary["balancedness"]) == windows - 1
    assert "served balancedness" in capsys.readouterr().out


def test_cli_reads_a_token_log_through_the_trace_readers(tmp_path):
    log = tmp_path / "routes.csv"
    rows = ["layer,step,expert"]
    generator = torch.Generator().manual_seed(0)
    for step in range(6):
        for layer in range(2):
            for _ in range(20):
                rows.append(f"{layer},{step},{int(torch.randint(0, 8, (1,), generator=generator))}")
    log.write_text("\n".join(rows) + "\n")
    plans_path = tmp_path / "plans.npy"
    assert main(["replay", str(log), "--slots", "12", "--gpus", "4", "--window", "2",
                 "--plans-out", str(plans_path)]) == 0
    assert np.load(plans_path).shape == (2, 2, 12)


def test_cli_last_is_the_plan_on_the_last_window_alone(trace_file, tmp_path):
    plans_path = tmp_path / "plans.npy"
    assert main(["replay", str(trace_file), "--slots", "12", "--gpus", "4", "--planner", "last",
                 "--plans-out", str(plans_path)]) == 0
    trace = torch.from_numpy(np.load(trace_file))
    plans = np.load(plans_path)
    for index in range(plans.shape[0]):
        assert np.array_equal(plans[index], make_planner("last", GLOBAL)(trace[index:index + 1], None).numpy())


@pytest.mark.parametrize("make, args, words", [
    (lambda p: np.save(p, np.ones((5, 8))), [], "expected [windows, layers, experts]"),
    (lambda p: np.save(p, np.ones((1, 3, 8))), [], "at least 2"),
    (lambda p: np.save(p, np.ones((4, 3, 8))), ["--window", "3"], "at least 2"),
    (lambda p: np.save(p, -np.ones((4, 3, 8))), [], "window 0, layer 0, expert 0"),
    (lambda p: np.save(p, np.array([[["a"] * 8] * 3] * 4)), [], "must be numbers"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), [], "not a readable"),
    (lambda p: p.write_text("not an array"), [], "not a readable"),
    (lambda p: np.save(p, np.ones((4, 3, 8))), ["--planner", "median"], "nknown planner"),
    (lambda p: np.save(p, np.ones((4, 3, 8))), ["--groups", "4"], "--groups needs --nodes"),
    (lambda p: np.save(p, np.ones((4, 3, 8))), ["--interval", "0"], "interval"),
])
def test_cli_exits_2_with_one_sentence(tmp_path, capsys, make, args, words):
    path = tmp_path / "trace.npy"
    make(path)
    assert main(["replay", str(path), "--slots", "12", "--gpus", "4", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and error.count("\n") == 0


def test_cli_refuses_a_missing_file_and_another_suffix(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "none.npy"), "--slots", "12", "--gpus", "4"]) == 2
    assert "no such file" in capsys.readouterr().err
    other = tmp_path / "trace.csv"
    other.write_text("layer,step,expert\n0,0,x\n")
    assert main(["replay", str(other), "--slots", "12", "--gpus", "4"]) == 2
    assert "trace.csv" in capsys.readouterr().err
    path = tmp_path / "trace.npy"
    np.save(path, np.ones((4, 3, 8)))
    assert main(["replay", str(path), "--slots", "10", "--gpus", "4"]) == 2
    assert "do not split evenly" in capsys.readouterr().err
