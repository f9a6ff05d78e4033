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


# Which data the view was on: an upload or generated loads cannot travel in a link, so the cluster made for them
# is not restored onto the sample a reload falls back to.
DATA_PARAM = "deploy_data"
CLUSTER_KEYS = ("deploy_replicas", "deploy_groups", "deploy_nodes", "deploy_gpus", "deploy_policy", "deploy_layer")


def restore_view() -> list[str]:
    """The URL's values into session state (see ui.state); a sentence per refused value."""
    origin = st.query_params.get(DATA_PARAM)
    gone = (origin in ("Upload", "Generate") and "dataset" not in st.session_state
            and st.session_state.get("source", "Sample") == "Sample")
    if gone:
        forget([DATA_PARAM, *CLUSTER_KEYS])
        st.session_state.deploy_data_gone = origin
    return restore(PARAMS)


def data_gone_sentence() -> str | None:
    """Once, after a reload or a link that named uploaded or generated data: what opened instead."""
    origin = st.session_state.pop("deploy_data_gone", None)
    if origin is None:
        return None
    what = "uploaded" if origin == "Upload" else "generated"
    return (f"This view was made on {what} loads, which a reload or a link cannot bring back: the sample opens "
            "instead, with its own cluster. Upload the file again (Data, Upload) to go on with it.")


def publish_view() -> None:
    """The view into the URL; the data only when it is a sample (an upload cannot travel in a link)."""
    source = st.session_state.get("source", "Sample")
    shared = [p for p in PARAMS if p.key != "sample" or source == "Sample"]
    if len(shared) < len(PARAMS):
        forget(["sample"])
    if source == "Sample":
        forget([DATA_PARAM])
    elif st.query_params.get(DATA_PARAM) != source:
        st.query_params[DATA_PARAM] = source
    publish(shared)
