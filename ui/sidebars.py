"""The data and packer sidebars the pages share, and the widget state they keep across pages."""

from __future__ import annotations

import dataclasses

import streamlit as st
import torch

from packviz import PRESETS, PackerConfig
from packviz.config import SELECT_BY, START_KINDS, SWAP_SCOPES, SWAP_SCORES
from packviz.data.generators import GENERATORS, drifting_moe, generate
from packviz.data.loaders import DEFAULT_MAX_VALUES, SUFFIXES, LoadedMatrix, read_loads
from packviz.data.samples import DEFAULT_SAMPLE, SAMPLES, Dataset, default_pack_count, load_sample, make_dataset
from packviz.limits import check_fits
from packviz.text import escape_markdown
from packviz.validate import valid_pack_counts

# The app opens on the fast preset so that every change answers within a second.
APP_PRESET = "fast"
KNOBS = ("num_restarts", "noise_min", "noise_max", "num_refined", "start", "one_swap", "two_swap",
         "two_swap_when_stuck", "swap_scope", "scope_k", "swap_score", "max_iterations", "select_by",
         "stop_at_lower_bound")


@st.cache_data(show_spinner=False)
def _load_sample(label: str) -> Dataset:
    return load_sample(label)


def dataset() -> Dataset:
    if "dataset" not in st.session_state:
        st.session_state.dataset = _load_sample(DEFAULT_SAMPLE)
    return st.session_state.dataset


def _set_dataset(new: Dataset, label: str | None = None, keep_packs: bool = False) -> None:
    st.session_state.dataset = new
    st.session_state.dataset_label = label
    st.session_state.data_error = None
    current = st.session_state.get("packs")
    # an upload or a new generated matrix keeps the GPUs the user chose, where they fit
    fits = isinstance(current, int) and 0 < current < new.weight.shape[1] and new.weight.shape[1] % current == 0
    st.session_state.packs = current if keep_packs and fits else new.default_packs
    st.session_state.layer = 0
    st.session_state.step = 0


def _use_sample() -> None:
    label = st.session_state.sample
    _set_dataset(_load_sample(label), label)


def _follow_linked_sample() -> None:
    """A link (or reload) can name another sample than the one loaded: load it,
    keeping the link's pack count, layer and step where they fit."""
    label = st.session_state.get("sample", DEFAULT_SAMPLE)
    if st.session_state.get("source", "Sample") != "Sample" or label not in SAMPLES:
        return
    if st.session_state.get("dataset_label", DEFAULT_SAMPLE) == label:
        return
    kept = {key: st.session_state[key] for key in ("packs", "layer", "step") if key in st.session_state}
    new = _load_sample(label)
    _set_dataset(new, label)
    layers, items = new.weight.shape
    if kept.get("packs") and items % kept["packs"] == 0:
        st.session_state.packs = kept["packs"]
    if 0 <= kept.get("layer", -1) < layers:
        st.session_state.layer = kept["layer"]
    st.session_state.step = kept.get("step", 0)


REPLICATE_LABEL = "Replicate hot experts into N slots (0: none)"
REPLICATE_HELP = ("EPLB's replication step: the expert with the most load per replica gets each extra slot, and "
                  "its replicas share its load. Exports then name each slot's expert and replica.")
STEPS_LABEL = "Steps (a time axis; 1: none)"
STEPS_HELP = ("moe loads whose hot experts drift from step to step, for the Deploy page's plan-on-one-window, "
              "score-on-the-next view; every other page sees their sum.")
PERSISTENT = (*KNOBS, "preset", "packs", "seed", "device", "source", "sample", "layer", "view", "section",
              "upload_slots", "deploy_replicas", "deploy_groups", "deploy_nodes", "deploy_gpus", "deploy_policy",
              "deploy_preset", "deploy_section", "deploy_layer", "deploy_model", "deploy_model_for",
              "deploy_expert_mb")


def _keep_widget_state() -> None:
    """Streamlit drops a widget's value when a page without it runs; keep a copy
    and put it back, so switching pages keeps every choice."""
    saved = st.session_state.setdefault("saved_widgets", {})
    for key in PERSISTENT:
        if key in st.session_state:
            saved[key] = st.session_state[key]
        if key in saved:
            # Re-assigning detaches the value from the old page's widget, so the
            # same key on this page starts from it.
            st.session_state[key] = saved[key]


def remember_widget_state(keys: tuple[str, ...]) -> None:
    """Values a page sets itself after the sidebar ran (defaults for new data) kept as the copy
    :func:`_keep_widget_state` puts back, so another page and back does not restore the older ones."""
    saved = st.session_state.setdefault("saved_widgets", {})
    for key in keys:
        if key in st.session_state:
            saved[key] = st.session_state[key]


def data_sidebar(replicate: bool = True) -> Dataset:
    """Sample, generator or upload; a refused upload keeps the data already loaded. ``replicate=False``
    hides "Replicate hot experts" (a page that replicates by its own slot count, as Deploy does); an
    upload then keeps the count set elsewhere, so switching pages does not reload it."""
    _keep_widget_state()
    _follow_linked_sample()
    dataset()
    st.sidebar.header("Data")
    source = st.sidebar.radio("Source", ["Sample", "Generate", "Upload"], horizontal=True, key="source")
    if source == "Sample":
        st.sidebar.selectbox("Sample", list(SAMPLES), key="sample", on_change=_use_sample)
    elif source == "Generate":
        with st.sidebar.form("generator"):
            kind = st.selectbox("Kind", list(GENERATORS), format_func=lambda k: f"{k}: {GENERATORS[k].description}")
            layers = st.number_input("Layers", 1, 1000, 8)
            items = st.number_input("Items per layer", 2, 4096, 64)
            seed = st.number_input("Generator seed", 0, 2**31 - 1, 0)
            parameters = {}
            spec = GENERATORS[kind]
            for name, (default, low, high) in spec.parameters.items():
                parameters[name] = st.number_input(name, float(low), float(high), float(default))
            integer = st.checkbox("Whole token counts", value=True)
            steps = int(st.number_input(STEPS_LABEL, 1, 10_000, 1, help=STEPS_HELP))
            drift = st.number_input("Drift per step (moe with steps)", 0.0, 1.0, 0.3)
            slots = st.number_input(REPLICATE_LABEL, 0, 65536, 0, help=REPLICATE_HELP) if replicate else 0
            if st.form_submit_button("Generate"):
                try:
                    # a size no preset can pack within the app's memory is refused before it is made
                    packs_then = default_pack_count(int(slots) or int(items))
                    too_big = check_fits(int(layers), int(slots) or int(items), packs_then, PRESETS[APP_PRESET].config)
                    if too_big:
                        raise ValueError(f"not generated: {too_big}")
                    history = None
                    if steps > 1:
                        if kind != "moe":
                            raise ValueError("a time axis (steps > 1) is generated for moe loads only")
                        if steps * int(layers) * int(items) > DEFAULT_MAX_VALUES:
                            raise ValueError(f"not generated: {steps} steps x {int(layers)} x {int(items)} is more "
                                             f"than the limit of {DEFAULT_MAX_VALUES:,} values")
                        history = drifting_moe(steps, int(layers), int(items), seed=int(seed), integer=integer,
                                               skew=parameters["skew"], drift=float(drift),
                                               tokens_per_layer=parameters["tokens_per_layer"])
                        weight = history.sum(dim=0)
                    else:
                        weight = generate(kind, int(layers), int(items), seed=int(seed), integer=integer,
                                          **parameters)
                    over = f", summed over {steps} drifting steps" if history is not None else ""
                    loaded = LoadedMatrix(weight, f"{int(layers)} x {int(items)} generated {kind} loads "
                                          f"(seed {int(seed)}{over})", f"generated-{kind}", time_axis=history)
                    _set_dataset(make_dataset(loaded, replicate_into=int(slots)), keep_packs=True)
                except ValueError as error:
                    st.session_state.data_error = str(error)
    else:
        upload = st.sidebar.file_uploader(
            "Load matrix (one row per layer, one column per expert)",
            type=[s.lstrip(".") for s in SUFFIXES], key="upload",
        )
        if replicate:
            slots = int(st.sidebar.number_input(REPLICATE_LABEL, 0, 65536, key="upload_slots", help=REPLICATE_HELP))
        else:
            slots = int(st.session_state.get("upload_slots", 0))
        wanted = (upload.file_id, slots) if upload is not None else None
        if wanted is not None and st.session_state.get("upload_id") != wanted:
            st.session_state.upload_id = wanted
            try:
                loaded = read_loads(upload.getvalue(), upload.name, keep_time_axis=True)
                _set_dataset(make_dataset(loaded, replicate_into=slots),
                             keep_packs=True)
            except ValueError as error:  # LoadError, or slots that cannot hold the experts
                st.session_state.data_error = str(error)
    if st.session_state.get("data_error"):
        st.sidebar.error("Not loaded, the previous data is kept: " + escape_markdown(st.session_state.data_error))
    return dataset()


def _apply_preset() -> None:
    config = PRESETS[st.session_state.preset].config
    for name in KNOBS:
        st.session_state[name] = getattr(config, name)
    st.session_state.applied_preset = st.session_state.preset


def _use_packs(value: int) -> None:
    st.session_state.packs = value


def packer_sidebar(num_items: int) -> tuple[str, PackerConfig, int] | None:
    """Preset and every knob; None while the pack count cannot work."""
    st.sidebar.header("Packer")
    if "preset" not in st.session_state:
        st.session_state.preset = APP_PRESET
    if st.session_state.get("applied_preset") != st.session_state.preset:
        # a new session, or a link naming another preset: its knobs, then the link's own
        linked = {name: st.session_state[name] for name in KNOBS if name in st.session_state.get("linked_knobs", ())}
        _apply_preset()
        st.session_state.update(linked)
    preset = st.sidebar.selectbox("Preset", list(PRESETS), key="preset", on_change=_apply_preset,
                                  help="\n".join(f"- **{p.name}**: {p.description}" for p in PRESETS.values()))
    st.sidebar.caption(PRESETS[preset].description)
    if "packs" not in st.session_state:
        st.session_state.packs = dataset().default_packs
    st.session_state.setdefault("seed", 0)
    st.session_state.setdefault("device", "auto")
    packs = int(st.sidebar.number_input("Packs (GPUs)", 1, max(num_items, 1), key="packs"))
    valid = valid_pack_counts(num_items)
    ok = num_items % packs == 0
    if not ok:
        nearby = sorted(valid, key=lambda m: abs(m - packs))[:6]
        st.sidebar.error(f"{num_items} items do not split evenly into {packs} packs. "
                         f"Pack counts that work: {', '.join(map(str, valid))}.")
        columns = st.sidebar.columns(len(nearby))
        for column, value in zip(columns, sorted(nearby)):
            column.button(str(value), key=f"use_packs_{value}", on_click=_use_packs, args=(value,),
                          help=f"use {value} packs")
    with st.sidebar.expander("Options", expanded=False):
        st.number_input("Restarts", 1, 8192, key="num_restarts")
        st.number_input("Noise min", 0.0, 5.0, key="noise_min", step=0.01, format="%.3f")
        st.number_input("Noise max", 0.0, 5.0, key="noise_max", step=0.01, format="%.3f")
        st.number_input("Candidates refined", 1, 8192, key="num_refined")
        st.selectbox("Fill", START_KINDS, key="start",
                     help="greedy: each item into the lightest pack with room; snake: dealt 0..m-1, m-1..0, ...; "
                          "differencing: rows of one item per pack merged, the two of largest spread first "
                          "(restart 0 stays the greedy)")
        st.checkbox("1-swap refinement", key="one_swap")
        st.checkbox("2-swap refinement", key="two_swap")
        st.checkbox("2-swaps only where no 1-swap helps", key="two_swap_when_stuck")
        st.selectbox("Swap between", SWAP_SCOPES, key="swap_scope",
                     help="extremes: heaviest with lightest pack; top-k: the k heaviest with the k lightest; "
                          "heaviest-vs-all: heaviest with every other pack")
        st.number_input("k (top-k scope)", 1, 64, key="scope_k")
        st.selectbox("Move score", SWAP_SCORES, key="swap_score")
        st.number_input("Iteration cap", 0, 10_000, key="max_iterations")
        st.selectbox("Keep and choose candidates by", SELECT_BY, key="select_by")
        st.checkbox("Stop refining at the lower bound", key="stop_at_lower_bound")
        st.number_input("Random seed", 0, 2**31 - 1, key="seed")
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        st.selectbox("Device", devices, key="device", help="auto: CUDA when there is one, else CPU")
    options = {name: st.session_state[name] for name in KNOBS}
    options["seed"] = int(st.session_state.get("seed", 0))
    options["device"] = st.session_state.get("device", "auto")
    try:
        config = PRESETS[preset].config.replace(**options)
    except ValueError as error:
        st.sidebar.error(escape_markdown(str(error)))
        return None
    base = dataclasses.replace(PRESETS[preset].config, seed=config.seed, device=config.device)
    label = preset if config == base else f"{preset}-custom"
    return (label, config, packs) if ok else None
