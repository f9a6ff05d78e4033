"""The run-time estimate that decides whether the app packs on every change or on request."""

from __future__ import annotations

import pytest

from packviz import PRESETS
from packviz.cost import estimate_seconds, is_slow

DEFAULT = (58, 288, 32)  # the app's default sample


@pytest.mark.parametrize("preset", ["eplb", "fast"])
def test_the_quick_presets_follow_every_change_on_the_default_sample(preset):
    assert not is_slow(*DEFAULT, PRESETS[preset].config)


@pytest.mark.parametrize("preset", ["restarts-1swap", "restarts-2swap", "best"])
def test_the_restart_presets_wait_for_a_button_on_the_default_sample(preset):
    assert is_slow(*DEFAULT, PRESETS[preset].config)


def test_the_estimates_keep_the_measured_order():
    # 2 cores, default sample: eplb < fast < best < restarts-2swap < restarts-1swap
    order = ["eplb", "fast", "best", "restarts-2swap", "restarts-1swap"]
    seconds = [estimate_seconds(*DEFAULT, PRESETS[name].config) for name in order]
    assert seconds == sorted(seconds)
    assert seconds[-1] > 10 * seconds[1]


def test_small_data_runs_at_once_whatever_the_preset():
    for preset in PRESETS.values():
        assert not is_slow(1, 12, 3, preset.config), preset.name


def test_more_restarts_layers_or_iterations_never_estimate_less():
    base = PRESETS["fast"].config
    low = estimate_seconds(*DEFAULT, base)
    assert estimate_seconds(*DEFAULT, base.replace(num_restarts=64)) > low
    assert estimate_seconds(116, 288, 32, base) > low
    assert estimate_seconds(*DEFAULT, base.replace(max_iterations=600)) > low
    assert is_slow(*DEFAULT, base.replace(num_restarts=4096))


def test_no_refinement_costs_only_the_fills():
    config = PRESETS["eplb"].config
    assert estimate_seconds(10, 100, 10, config) == pytest.approx(10 * 100 * 1e-6)
    assert estimate_seconds(10, 100, 10, config.replace(one_swap=True, max_iterations=0)) == pytest.approx(1e-3)
