"""The run-time estimate that decides whether the app packs on every change or on
request: calibrated on this machine, it is within 2x of the run that follows."""

from __future__ import annotations

import math

import pytest

from packviz import PRESETS
from packviz.cost import (
    REFERENCE_COSTS,
    CostModel,
    Measurement,
    estimate_seconds,
    is_slow,
    packer_kind,
    work_counts,
)
from packviz.data.samples import DEFAULT_SAMPLE, load_sample
from packviz.workers import PROBE_CONFIGS, _quickest, calibrate_here, time_probes, use_one_thread_here

DEFAULT = (58, 288, 32)  # the app's default sample


@pytest.fixture(scope="module")
def calibrated():
    # as the app runs: one intra-op thread a run, the probes timed just before the runs below
    # (some seconds; on a shared machine the speed drifts by 2x within a few minutes)
    use_one_thread_here()
    calibrate_here()


@pytest.mark.parametrize("packs", [32, 16])
@pytest.mark.parametrize("preset", ["eplb", "fast", "best", "restarts-2swap", "restarts-1swap", "fast:64"])
def test_the_calibrated_estimate_is_within_2x_of_the_run_that_follows(calibrated, preset, packs):
    # fast:64 is fast with 64 restarts: more fills, the same refinement (its fills were once estimated 19x)
    name, _, restarts = preset.partition(":")
    config = PRESETS[name].config
    if restarts:
        config = config.replace(num_restarts=int(restarts))
    sample = load_sample(DEFAULT_SAMPLE).weight
    # a run long enough to measure (one of some milliseconds is mostly the machine's noise): the
    # sample's layers repeated until the estimate reaches a quarter of a second
    layers = 1
    while layers < 4096 and estimate_seconds(layers, sample.shape[1], packs, config) < 0.25:
        layers *= 2
    weight = sample.repeat(-(-layers // sample.shape[0]), 1)[:layers]
    ratios = []
    # a core taken for a few seconds (another process) skews a probe or the run by 2x: a ratio out of
    # bounds is measured once more, the probes timed again first, as the app's next calibration would
    for attempt in range(2):
        if attempt:
            calibrate_here()
        estimate = estimate_seconds(*weight.shape, packs, config)
        seconds = _quickest(weight, packs, config)  # as the probes are timed
        ratios.append(estimate / seconds)
        print(f"{preset} {tuple(weight.shape)} into {packs}: estimated {estimate:.3f} s, ran {seconds:.3f} s, "
              f"ratio {estimate / seconds:.2f}")
        if 1 / 2 <= ratios[-1] <= 2:
            break
    assert 1 / 2 <= ratios[-1] <= 2, ratios


def test_a_kind_learns_its_time_from_a_run():
    model, fresh = CostModel(), CostModel()
    config = PRESETS["best"].config
    before = model.estimate(*DEFAULT, config)
    model.observe(Measurement(*DEFAULT, config, before * 8))
    assert model.estimate(*DEFAULT, config) == pytest.approx(before * 8)  # a size run once: its own time
    model.observe(Measurement(*DEFAULT, config, before * 2))
    assert model.estimate(*DEFAULT, config) == pytest.approx(before * 4)  # then halfway, in log space
    # another size of the same kind takes the nearest size's correction; another kind none
    other = (29, 288, 16, config.replace(num_restarts=12))
    assert model.estimate(*other) == pytest.approx(fresh.estimate(*other) * 4)
    model.observe(Measurement(2, 288, 32, config, fresh.estimate(2, 288, 32, config) / 2))
    assert model.estimate(4, 288, 32, config) == pytest.approx(fresh.estimate(4, 288, 32, config) / 2)
    assert model.estimate(*DEFAULT, PRESETS["eplb"].config) == fresh.estimate(*DEFAULT, PRESETS["eplb"].config)


def test_calibration_scales_to_the_machine():
    model = CostModel()
    probes = [Measurement(2, 288, 32, config, 3 * model.model_seconds(2, 288, 32, config)) for config in PROBE_CONFIGS]
    model.calibrate(probes)
    assert model.calibrated and model.speed == pytest.approx(3.0)
    for config in PROBE_CONFIGS:
        assert model.estimate(2, 288, 32, config) == pytest.approx(3 * CostModel().estimate(2, 288, 32, config))
    # a probe of a kind twice as slow as the rest: that kind is corrected, the speed is the mean's
    slow = [Measurement(p.layers, p.items, p.packs, p.config, p.seconds * (2 if i == 0 else 1))
            for i, p in enumerate(probes)]
    model.calibrate(slow)
    first = PROBE_CONFIGS[0]
    assert model.estimate(2, 288, 32, first) / CostModel().estimate(2, 288, 32, first) > model.speed


def test_bad_timings_teach_nothing():
    model = CostModel()
    config = PRESETS["fast"].config
    before = model.estimate(*DEFAULT, config)
    for seconds in (0.0, -1.0, math.inf, math.nan):
        model.observe(Measurement(*DEFAULT, config, seconds))
    model.calibrate([Measurement(*DEFAULT, config, 0.0)])
    assert model.estimate(*DEFAULT, config) == before and not model.calibrated


def test_the_probes_are_small_and_cover_every_preset_kind():
    kinds = {packer_kind(config) for config in PROBE_CONFIGS}
    assert {packer_kind(preset.config) for preset in PRESETS.values()} <= kinds
    probes = time_probes()
    assert len(probes) == 4 * len(PROBE_CONFIGS) and all(run.seconds > 0 for run in probes)


def test_small_data_runs_at_once_whatever_the_preset():
    for preset in PRESETS.values():
        assert not is_slow(1, 12, 3, preset.config), preset.name


def test_more_restarts_layers_or_iterations_never_estimate_less():
    base = PRESETS["fast"].config
    low = estimate_seconds(*DEFAULT, base)
    assert estimate_seconds(*DEFAULT, base.replace(num_restarts=64)) > low
    assert estimate_seconds(116, 288, 32, base) > low
    assert estimate_seconds(*DEFAULT, base.replace(max_iterations=600)) > low
    assert is_slow(*DEFAULT, base.replace(num_restarts=100_000))


def test_no_refinement_counts_only_the_fills():
    counts = work_counts(10, 100, 10, PRESETS["eplb"].config)
    assert counts["fill_cells"] == 10 * 100 and counts["fill_steps"] == 100
    assert counts["swap_cells"] == counts["paired_cells"] == counts["merges"] == 0
    refined = work_counts(10, 100, 10, PRESETS["eplb"].config.replace(one_swap=True, max_iterations=3))
    assert refined["swap_cells"] == 10 * 1 * 1 * 10 * 10 * 3  # layers, candidates, pairs, k x k, iterations
    assert set(REFERENCE_COSTS) == set(counts)



def test_two_layer_counts_split_what_a_run_pays_once_from_what_its_layers_add():
    # a machine whose loop over items costs 3x the reference and whose layers cost 0.5x: one ratio
    # learned at 2 layers would misjudge 256 by far; the two parts fitted from 2 and 32 layers do not
    model, reference = CostModel(), CostModel()
    config = PRESETS["fast"].config

    def machine(layers: int) -> float:
        fixed, layered = reference._model_parts(layers, 288, 32, config)
        return 3 * fixed + 0.5 * layered

    model.observe(Measurement(2, 288, 32, config, machine(2)))
    one_ratio = model.estimate(256, 288, 32, config)
    model.observe(Measurement(32, 288, 32, config, machine(32)))
    assert not 0.5 < one_ratio / machine(256) < 2
    for layers in (1, 8, 58, 256, 4096):
        assert model.estimate(layers, 288, 32, config) == pytest.approx(machine(layers))
    # another config of the kind at a size seen: its layers' part scaled, not the other's time
    more = config.replace(num_restarts=8)
    fixed, layered = reference._model_parts(32, 288, 32, more)
    assert model.estimate(32, 288, 32, more) == pytest.approx(3 * fixed + 0.5 * layered)
    # two runs that disagree beyond any machine (a part would come out negative): one ratio, as before
    noisy = CostModel()
    noisy.observe(Measurement(2, 288, 32, config, machine(2) * 10))
    noisy.observe(Measurement(32, 288, 32, config, machine(2)))
    assert noisy.estimate(4, 288, 32, config) > 0
