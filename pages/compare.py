"""Compare packers: every preset on the loaded data, against the lower bound."""

from __future__ import annotations

import streamlit as st

from packviz import PRESETS, optimal
from packviz.compare import compare_presets, optimum_rows
from packviz.figures import comparison_figure
from pages.common import data_sidebar, packer_sidebar, run_pack
from ui.router import require_router

require_router()

SOLVER_MAX_VALUES = 1024


@st.cache_data(show_spinner="Solving exactly…", max_entries=8)
def solve_layers(digest: str, _weight, num_packs: int, limit: int):
    del digest
    return optimal.solve_optimal(_weight, num_packs, time_limit_s=limit)

st.title("Compare packers")
data = data_sidebar()
choice = packer_sidebar(data.weight.shape[1])
if choice is None:
    st.warning("Choose a pack count that divides the items (see the sidebar).")
    st.stop()
_, config, packs = choice
st.write(f"Every preset on the loaded data ({data.weight.shape[0]} x {data.weight.shape[1]}), {packs} packs, "
         f"seed {config.seed}. Gap = max pack load / lower bound - 1; the lower bound is the best of "
         "L0 (mean), L1 and the L_t family (see How it works).")
results = {name: run_pack(data.digest, data.weight, PRESETS[name].config.replace(seed=config.seed), packs)
           for name in PRESETS}
rows = compare_presets(results)
st.dataframe(rows, width="stretch", hide_index=True)
st.plotly_chart(comparison_figure(rows), width="stretch", key="comparison")

if optimal.available():
    layers, items = data.weight.shape
    st.subheader("Distance to the true optimum")
    if layers * items > SOLVER_MAX_VALUES:
        st.caption(f"The exact solver (OR-Tools CP-SAT) is offered for small data: at most {SOLVER_MAX_VALUES} "
                   f"loads; this data has {layers * items}. Load the teaching or README sample to try it.")
    else:
        limit = st.slider("Time limit per layer (s)", 1, 60, 10, key="solver_limit")
        if st.button("Prove the optimum with CP-SAT", key="solve"):
            st.session_state.optimum = (data.digest, packs, solve_layers(data.digest, data.weight, packs, limit))
        found = st.session_state.get("optimum")
        if found and found[:2] == (data.digest, packs):
            solved = found[2]
            st.dataframe([{"layer": o.layer, "status": o.status, "optimum max load": o.max_load,
                           "proved bound": o.bound, "seconds": round(o.seconds, 2)} for o in solved],
                         hide_index=True, width="stretch")
            st.dataframe(optimum_rows(results, solved), hide_index=True, width="stretch")
