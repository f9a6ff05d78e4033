"""Traffic statistics measure what they say, and the generator matches the real trace's figures."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from packviz.data.samples import SAMPLE_DIR, TRACE_SAMPLES, read_trace_sample
from packviz.data.traffic import (
    PREFILL_TARGETS,
    PREFILL_TOLERANCE,
    drifting_traffic,
    traffic_series,
    traffic_statistics,
)


def test_steady_traffic_has_no_change_and_no_hot_set_change():
    loads = torch.tensor([[[0.0] * 4, [4, 2, 1, 1]]]).repeat(6, 1, 1)
    stats = traffic_statistics(loads)
    assert stats.moe_layers == 1 and stats.windows == 6
    assert stats.hot_over_mean == pytest.approx(2.0)
    assert stats.change_l1 == 0 and stats.hot_set_change == 0 and stats.top1_change == 0
    assert math.isnan(stats.autocorrelation)  # no expert's share varies


def test_alternating_traffic_swaps_its_hot_expert_every_window():
    a, b = [6.0, 1, 1, 0], [1.0, 6, 1, 0]
    loads = torch.tensor([[a], [b]] * 4)
    stats = traffic_statistics(loads, hot=1)
    assert stats.change_l1 == pytest.approx(10 / 8)  # |6-1| + |1-6| over 8 tokens
    assert stats.top1_change == 1 and stats.hot_set_change == 1
    assert stats.autocorrelation == pytest.approx(-1.0)
    assert stats.autocorrelation_4 == pytest.approx(1.0)


def test_dense_layers_are_left_out_of_every_statistic():
    loads = drifting_traffic(6, 4, 8, dense_layers=1, seed=3)
    with_dense = traffic_statistics(loads)
    without = traffic_statistics(loads[:, 1:])
    assert with_dense.moe_layers == 3
    assert with_dense.as_dict() == without.as_dict()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(2, 6)),
              elements=st.sampled_from([0.0, 0.0, 1.0, 1.0, 2.0, 1e12])))
def test_statistics_stay_in_range_on_tie_heavy_zero_heavy_and_huge_loads(values):
    loads = torch.from_numpy(values)
    if not (loads != 0).any():
        with pytest.raises(ValueError, match="no MoE layer"):
            traffic_statistics(loads)
        return
    stats = traffic_statistics(loads)
    assert 1 <= stats.hot_over_mean <= loads.shape[2]
    if loads.shape[0] > 1:
        assert 0 <= stats.change_l1 <= 2 + 1e-9
        assert 0 <= stats.hot_set_change <= 1 and 0 <= stats.top1_change <= 1


def test_generator_has_the_shape_whole_counts_and_dense_first_layer_of_deepseek_v2_lite():
    loads = drifting_traffic(5, seed=0)
    assert loads.shape == (5, 27, 64) and loads.dtype == torch.float64
    assert torch.equal(loads, loads.round()) and (loads >= 0).all()
    assert (loads[:, 0] == 0).all() and (loads[:, 1:].sum(2) > 0).all()
    # every MoE layer of a window routes the same tokens x top-6
    assert (loads[:, 1:].sum(2) == loads[:, 1:2].sum(2)).all()
    assert torch.equal(drifting_traffic(5, seed=0), loads)
    assert not torch.equal(drifting_traffic(5, seed=1), loads)


def test_generated_prefill_statistics_land_within_tolerance_of_the_real_trace():
    generated = [traffic_statistics(drifting_traffic(25, phase="prefill", seed=seed)).as_dict() for seed in range(5)]
    for name, target in PREFILL_TARGETS.items():
        mean = float(np.mean([g[name] for g in generated]))
        assert abs(mean - target) <= PREFILL_TOLERANCE[name], f"{name}: generated {mean:.4f}, real {target:.4f}"


def test_decode_traffic_drifts_where_prefill_does_not():
    prefill = [traffic_statistics(drifting_traffic(25, phase="prefill", seed=s)) for s in range(3)]
    decode = [traffic_statistics(drifting_traffic(25, phase="decode", seed=s)) for s in range(3)]
    assert np.mean([d.autocorrelation for d in decode]) > 0.3
    assert np.mean([p.autocorrelation for p in prefill]) < 0.05
    assert traffic_series(3, "decode").phase == "decode"


def test_generator_refuses_bad_shapes_in_a_sentence():
    with pytest.raises(ValueError, match="phase 'train' is not one of prefill, decode"):
        drifting_traffic(3, phase="train")
    with pytest.raises(ValueError, match="wobble is no traffic parameter"):
        drifting_traffic(3, wobble=1.0)
    with pytest.raises(ValueError, match="dense_layers must be within"):
        drifting_traffic(3, 2, 4, dense_layers=2)


def test_shipped_trace_sample_is_the_generator_output_and_small():
    (label,) = TRACE_SAMPLES
    path = SAMPLE_DIR / TRACE_SAMPLES[label]
    assert path.stat().st_size < 400_000
    (series,) = read_trace_sample(label)
    assert series.loads.shape == (48, 27, 64)
    assert series.moe_layers.tolist() == [False] + [True] * 26
    assert torch.equal(series.loads, drifting_traffic(48, phase="prefill", seed=1))


def test_the_trace_sample_regenerates_byte_for_byte(tmp_path):
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_samples.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True)
    (name,) = TRACE_SAMPLES.values()
    assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes()


def test_generate_command_writes_a_traffic_trace_read_trace_reads(tmp_path, capsys):
    from packviz.cli import main
    from packviz.data.traces import read_trace

    out = tmp_path / "trace.npy"
    assert main(["generate", "decode-traffic", "--layers", "5", "--items", "16", "--windows", "4", "--seed", "2",
                 "--param", "dense_layers=2", "--out", str(out)]) == 0
    (series,) = read_trace(out)
    assert series.loads.shape == (4, 5, 16) and series.moe_layers.tolist() == [False, False, True, True, True]
    assert torch.equal(series.loads, drifting_traffic(4, 5, 16, dense_layers=2, phase="decode", seed=2))
    assert main(["generate", "prefill-traffic", "--layers", "3", "--items", "8", "--out", str(out)]) == 2
    assert "prefill-traffic needs --windows N" in capsys.readouterr().err
    assert main(["generate", "prefill-traffic", "--layers", "3", "--items", "8", "--windows", "2",
                 "--out", str(tmp_path / "t.csv")]) == 2
    assert "written as .npy or .pt, not .csv" in capsys.readouterr().err
