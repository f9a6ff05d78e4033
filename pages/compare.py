"""Compare packers: every preset on the loaded data, against the lower bound."""

from __future__ import annotations

import streamlit as st

from packviz import PRESETS
from packviz.compare import compare_presets
from packviz.figures import comparison_figure
from pages.common import data_sidebar, packer_sidebar, run_pack

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
