"""The Replay page's figures: what one replay served window by window, and a sweep's balance against moves.

    served_figure(comparison) -> go.Figure
        top: served balancedness per window of the replay, the last-window plan (the engines') and no EPLB,
        re-plans marked; bottom: GB moved and the estimated stall of each re-plan.
    sweep_figure(results, window_s) -> go.Figure
        served balancedness against GB moved an hour, one point a setting, the Pareto front drawn through its
        points and the recommended setting ringed.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from packviz.eplb.replay import ReplayResult, pareto_front, recommend
from packviz.eplb.replay_view import ReplayComparison
from packviz.viz.figures import OKABE_ITO


def served_figure(comparison: ReplayComparison) -> go.Figure:
    """Two panels over windows 1..W-1 (the window each plan served); see the module's docstring."""
    result, baseline = comparison.result, comparison.baseline
    windows = list(range(1, result.balancedness.numel() + 1))
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.08,
                           specs=[[{}], [{"secondary_y": True}]])
    figure.add_trace(go.Scatter(x=windows, y=result.balancedness.tolist(), mode="lines",
                                name=f"{result.settings.planner} (this replay)",
                                line={"color": OKABE_ITO[0], "width": 2.5}), row=1, col=1)
    if baseline is not result:
        figure.add_trace(go.Scatter(x=windows, y=baseline.balancedness.tolist(), mode="lines",
                                    name="last window (what engines do)",
                                    line={"color": OKABE_ITO[1], "width": 1.5, "dash": "dot"}), row=1, col=1)
    if comparison.no_eplb is not None:
        figure.add_trace(go.Scatter(x=windows, y=comparison.no_eplb.tolist(), mode="lines", name="no EPLB",
                                    line={"color": "#999999", "width": 1.2}), row=1, col=1)
    # a re-plan made at the end of window i is in force from window i + 1: mark it where it starts serving
    replans = [w for w, made in zip(windows, result.replanned.tolist()) if made and w > 1]
    figure.add_trace(go.Scatter(x=replans, y=[float(result.balancedness[w - 1]) for w in replans], mode="markers",
                                name="re-plan in force", marker={"symbol": "triangle-up", "size": 8,
                                                                  "color": OKABE_ITO[0]}), row=1, col=1)
    figure.add_trace(go.Bar(x=windows[1:], y=result.gb_moved[1:].tolist(), name="GB moved",
                            marker_color=OKABE_ITO[2]), row=2, col=1)
    figure.add_trace(go.Scatter(x=windows[1:], y=result.stall_s[1:].tolist(), mode="markers",
                                name="stall estimate (s)", marker={"color": OKABE_ITO[5], "size": 6}),
                     row=2, col=1, secondary_y=True)
    figure.update_yaxes(title_text="served balancedness", row=1, col=1)
    figure.update_yaxes(title_text="GB moved", row=2, col=1, rangemode="tozero")
    figure.update_yaxes(title_text="stall (s)", row=2, col=1, secondary_y=True, rangemode="tozero", showgrid=False)
    figure.update_xaxes(title_text="window served", row=2, col=1)
    figure.update_layout(height=520, margin={"l": 60, "r": 60, "t": 30, "b": 40},
                         legend={"orientation": "h", "y": 1.08, "x": 0})
    return figure


def sweep_figure(results: Sequence[ReplayResult], window_s: float) -> go.Figure:
    """Served balancedness (y) against GB moved an hour (x) for every result; front and recommendation marked."""
    front = pareto_front(results, window_s)
    chosen = recommend(results, window_s) if results else None
    points = [(r.gb_per_hour(window_s), r.mean_balancedness, r.settings.label()) for r in results]
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", name="setting",
        text=[p[2] for p in points], hovertemplate="%{text}<br>%{y:.4f} served, %{x:.3g} GB/h<extra></extra>",
        marker={"color": [OKABE_ITO[0] if on else "#aaaaaa" for on in front], "size": 9}))
    on_front = sorted((p for p, on in zip(points, front) if on), key=lambda p: p[0])
    figure.add_trace(go.Scatter(x=[p[0] for p in on_front], y=[p[1] for p in on_front], mode="lines",
                                name="Pareto front", line={"color": OKABE_ITO[0], "dash": "dash"}, hoverinfo="skip"))
    if chosen is not None:
        figure.add_trace(go.Scatter(
            x=[chosen.gb_per_hour(window_s)], y=[chosen.mean_balancedness], mode="markers", name="recommended",
            text=[chosen.settings.label()], hovertemplate="recommended: %{text}<extra></extra>",
            marker={"symbol": "circle-open", "size": 20, "line": {"width": 3, "color": OKABE_ITO[1]}}))
    figure.update_xaxes(title_text=f"GB moved an hour ({window_s:g} s a window)", rangemode="tozero")
    figure.update_yaxes(title_text="served balancedness (mean over windows)")
    figure.update_layout(height=440, margin={"l": 60, "r": 20, "t": 30, "b": 50},
                         legend={"orientation": "h", "y": 1.1, "x": 0})
    return figure
