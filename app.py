"""packviz: the Streamlit app. A router over thin pages; everything computed lives in packviz."""

import streamlit as st

from packviz.workers import start_workers
from ui.router import mark_routed

st.set_page_config(page_title="packviz: balanced packing, step by step", layout="wide")
# Runs go to worker processes of one thread each (packviz.workers); started once, on the first visit.
start_workers()

navigation = st.navigation([
    st.Page("pages/explore.py", title="Explore", icon=":material/search:", default=True),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
    st.Page("pages/compare.py", title="Compare packers", icon=":material/bar_chart:"),
    st.Page("pages/deploy.py", title="Deploy", icon=":material/dns:"),
    st.Page("pages/replay.py", title="Replay", icon=":material/replay:"),
    st.Page("pages/about.py", title="How it works", icon=":material/menu_book:"),
])
mark_routed()
navigation.run()
