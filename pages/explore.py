"""Explore: load data, set the packer, see every layer and step through one."""

from __future__ import annotations

import streamlit as st

from ui.router import require_router

require_router()

heading = st.empty()
heading.title("packviz: balanced packing, step by step")
# The imports below bring in torch and plotly: seconds on a server's first visit.
# The title and this notice go out before them, so the page is never blank.
starting = st.empty()
with starting.container(), st.spinner("Loading the packer…"):
    from packviz.cost import estimate_seconds, is_slow
    from packviz.io.export import pack_summary_csv, placement_csv, sglang_json
    from packviz.text import download_name, escape_markdown
    from packviz.trace.timeline import phase_starts
    from packviz.viz.figures import restarts_figure
    from ui.caches import (
        PRESENTER_HEIGHT,
        animation_spec,
        heatmap,
        layer_story,
        overview,
        presenter_figure,
        run_pack,
        run_trace,
        start_packing_workers,
    )
    from ui.explore_view import (
        PRESENT_CSS,
        PRESENT_KEY,
        PRESENT_SCREENS,
        SECTIONS,
        presenting,
        publish_view,
        refuse_what_does_not_fit,
        restore_view,
    )
    from ui.sidebars import data_sidebar, packer_sidebar
starting.empty()

for problem in restore_view():
    st.warning(f"Shared link: {problem}.")
data = data_sidebar()
layers, items = data.weight.shape
choice = packer_sidebar(items)
# Present: the step-through alone, its buttons, chart and narration on one screen of a laptop.
present = presenting()
if present:
    heading.empty()
    st.html(PRESENT_CSS)
else:
    st.caption(escape_markdown(f"{data.source}: {data.description}"))
    # on_change="rerun" makes the expander lazy: the heatmap is built and sent only while it is open.
    loads_box = st.expander(f"Loads: {layers} layers x {items} items, total {float(data.weight.sum()):,.0f}",
                            expanded=layers * items <= 4096, key="loads_open", on_change="rerun")
    if loads_box.open:
        with loads_box:
            st.plotly_chart(heatmap(data.digest, data), width="stretch", key="heatmap")

# The last result packed on this data stays on screen while the settings cannot run
# (bad knobs, a pack count that does not divide) or wait for Run.
shown = st.session_state.get("shown_run")
kept = shown is not None and shown[0] == data.digest
meanwhile = (f"Shown meanwhile: the last result, preset {shown[3]}, {shown[2]} packs, seed {shown[1].seed}."
             if kept else "Nothing has been packed on this data yet.")
# One slot for what stops a run, written on every run: a change that lets the run go
# clears it before the run starts, not after.
notice = st.empty()
if choice is None:
    problem = st.session_state.get("packer_problem") or "the pack count does not divide the items"
    notice.warning(escape_markdown(f"Not packed: {problem}. {meanwhile}"))
    if not kept:
        publish_view()
        st.stop()
    _, config, packs, label = shown
else:
    label, config, packs = choice
    refuse_what_does_not_fit(data, config, packs)
    # A run estimated slow waits for Run; a quick one (or one already run) follows every change.
    wanted = (data.digest, config, packs)
    ran = st.session_state.setdefault("ran_runs", set())
    if is_slow(layers, items, packs, config) and wanted not in ran:
        seconds = estimate_seconds(layers, items, packs, config)
        with notice.container():
            note = st.columns([1, 4])
            if note[0].button("▶ Run", type="primary", key="run_slow", width="stretch"):
                ran.add(wanted)
                st.rerun()
            note[1].info(f"These settings take roughly {seconds:,.0f} s to pack {layers} layers: press Run to "
                         f"pack them. {meanwhile}")
        if not kept:
            publish_view()
            st.stop()
        _, config, packs, label = shown
    else:
        ran.add(wanted)
        st.session_state.shown_run = (data.digest, config, packs, label)

result = run_pack(data.digest, data.weight, config, packs)
summary = overview(data.digest, data, config, packs)
metrics = summary.metrics

if not present:
    cols = st.columns(5)
    cols[0].metric("Mean gap to LB", f"{float(metrics.gap_to_lower_bound.mean()) * 100:.4f}%")
    cols[1].metric("Max gap to LB", f"{float(metrics.gap_to_lower_bound.max()) * 100:.4f}%")
    cols[2].metric("Mean max/mean", f"{float(metrics.imbalance.mean()):.5f}")
    cols[3].metric("Run time", f"{result.elapsed_s * 1000:,.1f} ms")
    cols[4].metric("Device", result.device)

# One section at a time (not tabs): only what is on screen is computed.
section = st.radio("Section", SECTIONS, horizontal=True,
                   key="section", label_visibility="collapsed")


@st.fragment
def step_through() -> None:
    """A layer's recorded run. A fragment: a layer, view or step change reruns and
    resends only this, not the page's metrics, heatmap or overview."""
    top = st.columns([1, 1.4, 1, 1.6])
    layer = int(top[0].number_input("Layer", 0, layers - 1, key="layer"))
    view = top[1].radio("View", ["Animation", "Presenter"], horizontal=True, key="view")
    story = layer_story(data.digest, data, config, packs, layer)
    frames = story.frames
    about = (f"{len(frames)} steps: {len(story.trace.chosen_candidate.placements)} placements, "
             f"{len(story.trace.chosen_candidate.swaps)} moves; LB {story.bound:,.6g}")
    screen = None
    if view == "Presenter":
        top[2].toggle("Present", key=PRESENT_KEY, help="The step-through alone, buttons, chart and narration on "
                                                       "one screen; no sidebar")
        if present:
            screen = top[3].selectbox("Screen", list(PRESENT_SCREENS), key="present_screen",
                                      label_visibility="collapsed")
    if presenting() != present:
        st.rerun()  # in or out of Present: the whole page changes, not only this part
    if screen is None:
        top[3].caption(about)
    if view == "Animation":
        # 80 ms: 12 frames a second, which the bar-moving frames keep up with at 288 items
        speed = st.select_slider("Frame time", [40, 80, 150, 300, 600, 1200], value=80, key="frame_ms",
                                 format_func=lambda ms: f"{ms} ms a frame")
        st.plotly_chart(animation_spec(data.digest, data, config, packs, layer, speed), width="stretch",
                        key="animation")
    else:
        if "step" not in st.session_state or st.session_state.step >= len(frames):
            st.session_state.step = 0
        starts = phase_starts(frames)

        def go_to(index: int) -> None:
            st.session_state.step = max(0, min(index, len(frames) - 1))

        buttons = st.columns(7)
        buttons[0].button("« Start", on_click=go_to, args=(0,), width="stretch")
        buttons[1].button("‹ Prev", on_click=go_to, args=(st.session_state.step - 1,), width="stretch",
                          shortcut="Left")
        buttons[2].button("Next ›", on_click=go_to, args=(st.session_state.step + 1,), width="stretch",
                          shortcut="Right")
        buttons[3].button("Fill", on_click=go_to, args=(starts.get("fill", 0),), width="stretch")
        buttons[4].button("Refinement", on_click=go_to, args=(starts.get("refine", starts["final"]),),
                          disabled="refine" not in starts, width="stretch")
        buttons[5].button("Final »", on_click=go_to, args=(starts["final"],), width="stretch")
        step = st.session_state.step
        buttons[6].markdown(f"**Step {step} / {len(frames) - 1}**  \n{frames[step].phase}")
        if screen is None:
            st.plotly_chart(presenter_figure(data.digest, data, config, packs, layer, step, PRESENTER_HEIGHT),
                            width="stretch", key="presenter")
            st.info(story.captions[step])
        else:
            # as Learn's Present: the narration beside the chart, both under the buttons
            chart, words = st.columns([3.4, 1])
            chart.plotly_chart(presenter_figure(data.digest, data, config, packs, layer, step,
                                                PRESENT_SCREENS[screen]), width="stretch", key="presenter")
            words.info(story.captions[step])
            words.caption(about)
    st.caption("Each bar is a pack, each segment an item (its colour stays with it); the outlined segments "
               "are the items placed or swapped in this step. Dashed lines: the mean pack load and the lower "
               "bound LB.")
    publish_view()
    if view == "Presenter" and st.session_state.step + 1 < len(frames):
        # The next step's figure, built once this one is on its way: Next then only sends it.
        presenter_figure(data.digest, data, config, packs, layer, st.session_state.step + 1,
                         PRESENT_SCREENS[screen] if screen else PRESENTER_HEIGHT)


@st.fragment
def restarts() -> None:
    """Every restart of one layer; a fragment, so a layer change reruns only this."""
    layer_for_restarts = int(st.columns([1, 3])[0].number_input("Layer", 0, layers - 1, key="layer"))
    trace = run_trace(data.digest, data.weight, config, packs, layer_for_restarts).traces[0]
    st.plotly_chart(restarts_figure(trace), width="stretch", key="restarts")
    count = len(trace.restart_spreads)
    st.caption(f"Layer {layer_for_restarts}: {count} restart{'s' if count != 1 else ''}, "
               + (f"{len(trace.candidates)} kept for refinement (orange); the star is the winning restart."
                  if count > 1 else "the plain greedy fill, kept and refined. This preset runs a single fill; "
                  "choose restarts-2swap to see many."))
    publish_view()


if section == "Overview":
    st.plotly_chart(summary.figure, width="stretch", key="overview")
    st.dataframe(summary.rows, width="stretch", hide_index=True, height=260,
                 column_config={"gap to LB (%)": st.column_config.NumberColumn(format="%.4f%%"),
                                "max/mean - 1 (%)": st.column_config.NumberColumn(format="%.4f%%")})

elif section == "Step through a layer":
    step_through()

elif section == "Restarts":
    restarts()

else:
    st.write(f"The placement on screen: preset **{label}**, {packs} packs, seed {config.seed}, "
             f"{layers} layers.")
    st.download_button("Placement CSV (layer, item, pack, rank_in_pack, load, expert, replica)",
                       placement_csv(result, data.slots),
                       file_name=download_name("placement", label, packs, config.seed, "csv"),
                       mime="text/csv", key="download_placement")
    st.download_button("Per-pack summary CSV", pack_summary_csv(result, data.slots),
                       file_name=download_name("packs", label, packs, config.seed, "csv"),
                       mime="text/csv", key="download_summary")
    st.download_button("SGLang physical_to_logical_map (JSON, logical expert ids)", sglang_json(result, data.slots),
                       file_name=download_name("sglang", label, packs, config.seed, "json"),
                       mime="application/json", key="download_sglang")

publish_view()

# The workers that pack for every session start once this first run is drawn (packviz.workers).
start_packing_workers()
