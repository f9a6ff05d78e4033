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
