"""Small text helpers for showing user-supplied strings safely."""

from __future__ import annotations

import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<&$:])")


def escape_markdown(text: str) -> str:
    """``text`` with every Markdown (and HTML-looking) character escaped, so a
    file name or cell value is shown as typed and never rendered."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def download_name(kind: str, preset: str, num_packs: int, seed: int, suffix: str) -> str:
    """File names that say what the download holds: ``placement_eplb_32packs_seed0.csv``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", preset)
    return f"{kind}_{safe}_{num_packs}packs_seed{seed}.{suffix}"


def format_load(value: float) -> str:
    """A load as every text and chart shows it (one rule, so a number in a text is
    the number on the chart beside it): whole numbers, and any from 100,000 up,
    with separators; else 5 significant digits (8,092.5, 158.5, 135.33, 3.0527)."""
    value = float(value)
    text = f"{value:,.0f}" if value.is_integer() or abs(value) >= 1e5 else f"{value:,.5g}"
    return "0" if text == "-0" else text


def format_deviation(value: float, reference: float) -> str:
    """A signed distance from ``reference`` (a pack's from the mean) to the decimals
    ``reference`` shows with: beside "mean 216.17", "+2.83" and not "+2.8333"."""
    shown = format_load(reference)
    decimals = len(shown.split(".")[1]) if "." in shown and "e" not in shown else 0
    text = f"{float(value):+,.{decimals}f}"
    return "0" if text.lstrip("+-").strip("0.,") == "" else text


def sum_text(value: float) -> str:
    """A sum of loads for a file: a whole number as one, else 12 significant digits,
    the float noise of the additions left out (214.112, not 214.11199999999997)."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    rounded = float(f"{value:.12g}")
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def count_of(count: int, noun: str, plural: str | None = None) -> str:
    """``1 node``, ``4 nodes``: a count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"


def duration(seconds: float) -> str:
    """A time a reader can use: ``no time`` at 0, ``0.42 ms``, ``12 ms``, ``1.23 s``."""
    if seconds <= 0:
        return "no time"
    if seconds < 1:
        return f"{seconds * 1000:.2g} ms" if seconds < 0.01 else f"{seconds * 1000:,.0f} ms"
    return f"{seconds:,.3g} s"
