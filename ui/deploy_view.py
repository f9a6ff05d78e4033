"""The Deploy page's view in the URL: a shared link or a reload opens the same cluster, plan and section."""

from __future__ import annotations

import streamlit as st

from packviz.config import PRESETS
from packviz.data.samples import SAMPLES
from packviz.eplb.cluster import POLICIES
from ui.state import Param, forget, parse_choice, parse_int, publish, restore

SECTIONS = ("Placement", "Balance", "Over time", "Export")
PARAMS = [
    Param("sample", parse_choice(list(SAMPLES))),
    Param("deploy_replicas", parse_int(1, 1 << 16)),
    Param("deploy_groups", parse_int(0, 1 << 16)),
    Param("deploy_nodes", parse_int(1, 4096)),
    Param("deploy_gpus", parse_int(1, 1 << 16)),
    Param("deploy_policy", parse_choice(POLICIES)),
    Param("deploy_preset", parse_choice(list(PRESETS))),
    Param("deploy_section", parse_choice(SECTIONS)),
    Param("deploy_layer", parse_int(0, 1 << 20)),
]


def restore_view() -> list[str]:
    """The URL's values into session state (see ui.state); a sentence per refused value."""
    return restore(PARAMS)


def publish_view() -> None:
    """The view into the URL; the data only when it is a sample (an upload cannot travel in a link)."""
    shared = [p for p in PARAMS if p.key != "sample" or st.session_state.get("source", "Sample") == "Sample"]
    if len(shared) < len(PARAMS):
        forget(["sample"])
    publish(shared)
