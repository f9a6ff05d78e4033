"""The browser benchmark's report: medians, worst values and verdicts (no browser needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench_browser", ROOT / "benchmarks" / "bench_browser.py")
bench = importlib.util.module_from_spec(spec)
sys.modules.setdefault("bench_browser", bench)  # its dataclass looks itself up there
spec.loader.exec_module(bench)
Row, format_report = bench.Row, bench.format_report


def test_a_time_passes_on_its_median_and_reports_its_max():
    row = Row("presenter Next", [0.2, 0.9, 0.25], target=0.3)
    assert (row.median, row.worst, row.verdict) == (0.25, 0.9, "PASS")
    assert Row("x", [0.4, 0.5], target=0.3).verdict == "FAIL"


def test_a_rate_wants_more_and_its_worst_is_the_lowest():
    row = Row("playback", [12.0, 4.0, 11.0], target=10.0, higher_is_better=True, unit="frames/s")
    assert (row.median, row.worst, row.verdict) == (11.0, 4.0, "PASS")
    assert Row("playback", [2.0], target=10.0, higher_is_better=True).verdict == "FAIL"


def test_information_rows_and_missing_values_are_not_judged():
    assert Row("page complete", [1.0], target=None).verdict == ""
    assert Row("never measured", [], target=1.0).verdict == "n/a"


def test_the_report_lists_each_figure_with_its_target_verdict_and_notes():
    text = format_report([
        Row("first chart", [2.5, 3.5, 2.0], target=3.0, note="a fresh server each time"),
        Row("playback", [6.0], target=10.0, higher_is_better=True, unit="frames/s"),
        Row("page complete", [4.0], target=None),
    ], header="HEADER")
    lines = text.splitlines()
    assert lines[0] == "HEADER"
    first = next(line for line in lines if line.startswith("first chart"))
    assert first.split() == ["first", "chart", "2.500", "s", "3.500", "s", "3", "<=", "3.000", "s", "PASS"]
    playback = next(line for line in lines if line.startswith("playback"))
    assert ">= 10.0 frames/s" in playback and playback.endswith("FAIL") and "6.0 frames/s" in playback
    assert next(line for line in lines if line.startswith("page complete")).endswith("1")
    assert "- first chart: a fresh server each time" in lines
    assert lines[-1] == "1 of 2 targets met (judged on the median); missed: playback"
