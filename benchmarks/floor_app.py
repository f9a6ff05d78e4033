"""The floor for bench_browser: what Streamlit itself takes on this machine.

A bare page with one stacked Plotly bar chart of 288 segments on 32 bars (the size
of packviz's step chart on the default sample) and a Next button in a fragment that
redraws it. Nothing of packviz is imported: no torch, no packing.

    streamlit run benchmarks/floor_app.py
"""

import random

import plotly.graph_objects as go
import streamlit as st

BARS, SEGMENTS_PER_BAR = 32, 9


def figure(step: int) -> go.Figure:
    rng = random.Random(step)
    bars = [f"pack {index}" for index in range(BARS)]
    fig = go.Figure([go.Bar(x=bars, y=[rng.uniform(1, 10) for _ in bars], name=f"slot {slot}")
                     for slot in range(SEGMENTS_PER_BAR)])
    fig.update_layout(barmode="stack", height=460, title=f"step {step}", showlegend=False)
    return fig


st.title("Floor: one stacked bar chart")


@st.fragment
def stepper() -> None:
    step = st.session_state.setdefault("step", 0)
    if st.button("Next ›", key="next"):
        step = st.session_state.step = step + 1
    st.plotly_chart(figure(step), key="floor_chart")


stepper()
