"""Compare packers: every preset on the loaded data, against the lower bound."""

from __future__ import annotations

import streamlit as st

from packviz import PRESETS, optimal
from packviz.compare import compare_presets, optimum_rows
from packviz.figures import comparison_figure
from pages.common import data_sidebar, packer_sidebar, refuse_what_does_not_fit, run_pack
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
refuse_what_does_not_fit(data, config, packs)
st.write(f"Every preset on the loaded data ({data.weight.shape[0]} x {data.weight.shape[1]}), {packs} packs, "
         f"seed {config.seed}. Gap = max pack load / lower bound - 1; the lower bound is the best of "
         "L0 (mean), L1 and the L_t family (see How it works).")
# Quick presets first, so the first rows show within a second or two; the seed's
# 2048-restart preset only when asked for.
SLOW = {"restarts-1swap"}
order = sorted(PRESETS, key=lambda name: PRESETS[name].config.num_restarts * (2 if name == "best" else 1))
with_slow = st.toggle("Also run restarts-1swap (the seed before: 2048 restarts, slow)", key="compare_slow")
names = [name for name in order if with_slow or name not in SLOW]
progress = st.progress(0.0, text="Packing…")
table, chart = st.empty(), st.empty()
results = {}
for done, name in enumerate(names, start=1):
    results[name] = run_pack(data.digest, data.weight, PRESETS[name].config.replace(seed=config.seed), packs)
    rows = compare_presets(results)
    table.dataframe(rows, width="stretch", hide_index=True, key=f"compare_table_{done}",
                    column_config={"mean_gap": st.column_config.NumberColumn("mean gap to LB", format="percent"),
                                   "max_gap": st.column_config.NumberColumn("max gap to LB", format="percent"),
                                   "seconds": st.column_config.NumberColumn("seconds", format="%.3f"),
                                   "time_vs_baseline": st.column_config.NumberColumn("time / eplb",
                                                                                     format="%.2fx")})
    chart.plotly_chart(comparison_figure(rows), width="stretch", key=f"comparison_{done}")
    progress.progress(done / len(names), text=f"{name} done ({done} of {len(names)})")
progress.empty()

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
