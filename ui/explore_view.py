"""Explore's view in the URL (a shared link or a reload), and its refusal of runs that do not fit."""

from __future__ import annotations

import streamlit as st

from packviz import PRESETS, PackerConfig
from packviz.config import SELECT_BY, START_KINDS, SWAP_SCOPES, SWAP_SCORES
from packviz.data.samples import SAMPLES, Dataset
from packviz.limits import check_fits
from ui.sidebars import APP_PRESET, KNOBS
from ui.state import Param, forget, parse_bool, parse_choice, parse_float, parse_int, publish, restore, show_bool


def _knob_param(name: str) -> Param:
    default = getattr(PRESETS[APP_PRESET].config, name)
    if isinstance(default, bool):
        return Param(name, parse_bool, show_bool)
    if isinstance(default, int):
        return Param(name, parse_int(0, 1_000_000))
    if isinstance(default, float):
        return Param(name, parse_float)
    choices = {"start": START_KINDS, "swap_scope": SWAP_SCOPES, "swap_score": SWAP_SCORES, "select_by": SELECT_BY}
    return Param(name, parse_choice(choices[name]))


SECTIONS = ["Overview", "Step through a layer", "Restarts", "Export"]
VIEW_PARAMS = [
    Param("sample", parse_choice(list(SAMPLES))),
    Param("preset", parse_choice(list(PRESETS))),
    Param("packs", parse_int(1, 1 << 20)),
    Param("seed", parse_int(0, 2**31 - 1)),
    Param("section", parse_choice(SECTIONS)),
    Param("layer", parse_int(0, 1 << 20)),
    Param("view", parse_choice(["Animation", "Presenter"])),
    Param("step", parse_int(0, 1 << 20)),
    # "present" in the link, as on Learn; links made before said "present_view"
    Param(PRESENT_KEY := "present_view", parse_bool, show_bool, url="present", old_url="present_view"),
]
# The presenter's screen sizes and the chart's height on each: what is left under the controls.
PRESENT_SCREENS = {"laptop 1366 x 768": 470, "projector 1920 x 1080": 760}
# Our own fixed CSS (never user text): in present mode the step-through has the screen.
PRESENT_CSS = """<style>
  [data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header {display: none !important;}
  .block-container {padding-top: 0.6rem !important; padding-bottom: 0 !important; max-width: 100% !important;}
  [data-testid="stAlert"] p {font-size: 1.2rem !important; line-height: 1.35;}
  .stButton button p {font-size: 1.1rem !important;}
  [data-testid="stVerticalBlock"] {gap: 0.45rem !important;}
</style>"""


def presenting() -> bool:
    """Whether Explore shows the step-through alone, for a room (Presenter's Present)."""
    return bool(st.session_state.get(PRESENT_KEY)) and st.session_state.get("view") == "Presenter" \
        and st.session_state.get("section") == "Step through a layer"
KNOB_PARAMS = [_knob_param(name) for name in KNOBS]


def restore_view() -> list[str]:
    """Explore's state from the URL (a shared link or a reload); see ui.state."""
    problems = restore(VIEW_PARAMS + KNOB_PARAMS)
    st.session_state.linked_knobs = [name for name in KNOBS if name in st.query_params]
    return problems


def publish_view() -> None:
    """Explore's state into the URL: the data when it is a sample, and only the
    knobs that differ from the preset, so links stay short."""
    shared = [p for p in VIEW_PARAMS if p.key != "sample" or st.session_state.get("source", "Sample") == "Sample"]
    if len(shared) < len(VIEW_PARAMS):
        forget(["sample"])
    preset = PRESETS.get(st.session_state.get("preset", APP_PRESET), PRESETS[APP_PRESET]).config
    changed = [p for p in KNOB_PARAMS if st.session_state.get(p.key, getattr(preset, p.key)) != getattr(preset, p.key)]
    forget([p.key for p in KNOB_PARAMS if p not in changed])
    publish(shared + changed)


def refuse_what_does_not_fit(data: Dataset, config: PackerConfig, packs: int) -> None:
    """Stop the page with a message saying what fits, before a run that would
    outgrow the app's memory starts."""
    layers, items = data.weight.shape
    problem = check_fits(layers, items, packs, config)
    if problem:
        st.error(problem)
        publish_view()
        st.stop()
