"""Plotly figures from loads, results, traces and frames: pure functions, no UI."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from packviz.metrics import LayerMetrics
from packviz.text import format_deviation, format_load
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame, build_frames
from packviz.viz.lesson_style import (
    BOUND_MARK,
    LB_COLOUR,
    MEAN_COLOUR,
    MOVED_COLOUR,
    OKABE_ITO,  # noqa: F401 - viz.deploy's palette, kept importable here
    bound_items,
    item_colour,
    piece_colours,
    short_piece_label,
)

PALETTE = qualitative.Dark24 + qualitative.Light24
HIGHLIGHT_WIDTH = 4
FONT = {"size": 15}


def _item_colorscale(num_items: int) -> list[list]:
    """A colour per item index, cycling the palette, as a colorscale on 0..n-1."""
    if num_items == 1:
        return [[0.0, PALETTE[0]], [1.0, PALETTE[0]]]
    scale = []
    for item in range(num_items):
        position = item / (num_items - 1)
        scale.append([position, PALETTE[item % len(PALETTE)]])
    return scale


class PrebuiltFigure(go.Figure):
    """A figure handed over as a ready dict: building hundreds of animation
    frames as Plotly objects costs seconds of validation, so the frames stay
    plain dicts (their keys are checked in the tests) and ``to_dict`` returns them."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self._spec = spec

    def to_dict(self) -> dict:
        return self._spec

    def to_plotly_json(self) -> dict:
        return self._spec


def _number(value: float) -> float | int:
    # Twelve significant digits, not a fixed number of decimals: loads of 1e-8
    # must draw as faithfully as loads of 1e8.
    return int(value) if float(value).is_integer() else float(f"{float(value):.12g}")


def heatmap_figure(weight: torch.Tensor, item_names: Sequence[str] | None = None) -> go.Figure:
    """The load matrix, layers down and items across."""
    num_layers = weight.shape[0]
    figure = go.Figure(go.Heatmap(
        z=weight.tolist(),
        x=list(item_names) if item_names else None,
        y=list(range(num_layers)),
        colorscale="Viridis",
        colorbar={"title": "load", "thickness": 12},
        hovertemplate="layer %{y}<br>item %{x}<br>load %{z:,}<extra></extra>",
    ))
    # Layers are whole numbers: no tick at -0.4 for a single layer.
    layer_ticks = {"tickmode": "linear", "dtick": 1} if num_layers <= 12 else {"tickformat": "d"}
    figure.update_layout(height=260 if num_layers > 1 else 140, margin={"l": 50, "r": 10, "t": 10, "b": 40},
                         xaxis_title="item", yaxis={"title": "layer", "autorange": "reversed", **layer_ticks})
    return figure


def overview_figure(metrics: LayerMetrics) -> go.Figure:
    """Per-layer gap to the lower bound and max/mean imbalance, in percent, each on
    its own axis: a skewed layer's imbalance must not flatten the gaps."""
    layers = list(range(len(metrics.max_load)))
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                           subplot_titles=("gap to the lower bound (%)", "max / mean - 1 (%)"))
    figure.add_trace(go.Bar(x=layers, y=(metrics.gap_to_lower_bound * 100).tolist(), name="gap to LB (%)",
                            hovertemplate="layer %{x}<br>gap to LB %{y:.4f}%<extra></extra>"), row=1, col=1)
    figure.add_trace(go.Scatter(x=layers, y=((metrics.imbalance - 1) * 100).tolist(), name="max/mean - 1 (%)",
                                mode="lines+markers",
                                hovertemplate="layer %{x}<br>max/mean - 1 %{y:.4f}%<extra></extra>"), row=2, col=1)
    figure.update_yaxes(rangemode="tozero", ticksuffix="%", exponentformat="none")
    if not bool((metrics.gap_to_lower_bound > 0).any()):
        # every layer on its bound: flat bars on a fixed axis, not an axis stretched over nothing
        figure.update_yaxes(range=[0, 1], row=1, col=1)
    figure.update_xaxes(title_text="layer", tickformat="d", row=2, col=1)
    figure.update_layout(height=380, margin={"l": 60, "r": 10, "t": 30, "b": 40}, showlegend=False)
    return figure


def _frame_traces(trace: LayerTrace, frame: Frame, labels: Sequence[str] | None = None) -> list[dict]:
    # Plain dicts: a 300-frame animation is built in milliseconds instead of
    # seconds of Plotly's validation; the keys are checked by a test instead.
    weight = trace.weight
    num_packs = trace.num_packs
    highlight = set(frame.highlight)
    bars = []
    for rank in range(trace.items_per_pack):
        items = [frame.slots[p][rank] for p in range(num_packs)]
        bars.append({
            "type": "bar",
            "x": list(range(num_packs)),
            "y": [_number(weight[i]) if i >= 0 else 0 for i in items],
            # what hovering a segment names: the item and the expert it serves
            "customdata": [_item_label(i, labels) for i in items],
            "marker": {"color": [max(i, 0) for i in items],
                       "line": {"width": [HIGHLIGHT_WIDTH if i in highlight else 0 for i in items]}},
        })
    return bars


def _item_label(item: int, labels: Sequence[str] | None) -> str:
    if item < 0:
        return "empty slot"
    return f"item {item}: {labels[item]}" if labels else f"item {item}"


def _base_figure(trace: LayerTrace, frame: Frame, lower_bound: float, y_max: float,
                 labels: Sequence[str] | None = None, caption: str = "") -> go.Figure:
    num_items = trace.num_items
    figure = go.Figure(_frame_traces(trace, frame, labels))
    figure.update_traces(
        marker_colorscale=_item_colorscale(num_items), marker_cmin=0, marker_cmax=max(num_items - 1, 1),
        marker_line_color="black", showlegend=False,
        hovertemplate="pack %{x}<br>%{customdata}<br>load %{y:,}<extra></extra>",
    )
    mean = sum(trace.weight) / trace.num_packs
    for value, label, colour, side in ((mean, "mean", "#444", "top left"), (lower_bound, "LB", "#d62728", "top right")):
        figure.add_hline(y=value, line_dash="dash", line_color=colour, line_width=2,
                         annotation_text=f"{label} {value:,.6g}", annotation_position=side,
                         annotation_font_color=colour)
    figure.update_layout(
        barmode="stack", bargap=0.15, height=520, font=FONT,
        margin={"l": 60, "r": 20, "t": 90, "b": 50},
        title={"text": _wrap(caption), "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
        xaxis={"title": "pack", "tickmode": "linear" if trace.num_packs <= 40 else "auto",
               "range": [-0.6, trace.num_packs - 0.4]},
        yaxis={"title": "load", "range": [0, y_max]},
    )
    return figure


def _wrap(text: str, width: int = 110) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "<br>".join(lines)


def _y_max(frames: Sequence[Frame], lower_bound: float) -> float:
    return 1.08 * max(lower_bound, *(max(frame.loads) for frame in frames))


def frame_figure(trace: LayerTrace, frames: Sequence[Frame], index: int, lower_bound: float,
                 item_labels: Sequence[str] | None = None, caption: str = "") -> go.Figure:
    """One frame, still: for a presenter stepping with Prev / Next. ``item_labels``
    name each item's expert on hover; ``caption`` is the title."""
    return _base_figure(trace, frames[index], lower_bound, _y_max(frames, lower_bound), item_labels, caption)


def _item_colour(item: int) -> str:
    return PALETTE[item % len(PALETTE)]


# Where the animation parks a bar that is not on screen: with bars 0.85 wide, one
# at -2 ends at -1.575, wholly left of the x range (which starts at -0.6).
OFF_AXIS = -2


def _positions(trace: LayerTrace, frame: Frame, grid: float) -> tuple[list[int], list[float | int]]:
    """Each item's pack (OFF_AXIS while unplaced) and the load stacked below it in
    its pack, rounded to ``grid``."""
    packs = [OFF_AXIS] * trace.num_items
    bases: list[float | int] = [0] * trace.num_items
    for pack, row in enumerate(frame.slots):
        below = 0.0
        for item in row:
            if item >= 0:
                packs[item] = pack
                bases[item] = _on_grid(below, grid)
                below += trace.weight[item]
    return packs, bases


def _on_grid(value: float, grid: float) -> float | int:
    # A base only places a segment on screen: a grid far below a pixel keeps each
    # number a few characters long (whole numbers for loads in the thousands).
    steps = round(value / grid)
    return int(steps * grid) if grid >= 1 else float(f"{steps * grid:.12g}")


def _outlines(trace: LayerTrace, frame: Frame, packs: list[int], bases: list[float | int], slots: int) -> dict:
    """The outlined items, padded to ``slots`` bars parked off the axis: a bar that
    appears during a transition is drawn unstyled (black), one that moves keeps its style."""
    items = frame.highlight
    spare = slots - len(items)
    return {"x": [packs[i] for i in items] + [OFF_AXIS] * spare, "base": [bases[i] for i in items] + [0] * spare,
            "y": [_number(trace.weight[i]) for i in items] + [0] * spare}


def animation_figure(trace: LayerTrace, frames: Sequence[Frame], lower_bound: float,
                     item_labels: Sequence[str] | None = None, captions: Sequence[str] | None = None,
                     frame_ms: int = 150) -> go.Figure:
    """Every frame as a Plotly animation with Play / Pause and a slider; ``captions``
    (one per frame) title each frame.

    Built for playback speed: Plotly redraws a whole figure in a few hundred
    milliseconds at 288 items, but moves bars in a few, so the frames use
    ``redraw: false`` and carry only what moves. One bar trace holds every item
    in item order, so its colour, load and hover label are set once; a frame
    gives each item's pack (``x``) and the load below it (``base``). A second
    trace draws the outlines of the items placed or moved in the frame, and the
    caption is a text trace above the packs (a title would need a redraw)."""
    captions = list(captions) if captions is not None else [""] * len(frames)
    num_items, num_packs = trace.num_items, trace.num_packs
    y_max = _y_max(frames, lower_bound)
    # a ten-thousandth of the axis's decade: a twentieth of a pixel on a 600-pixel chart
    grid = 10.0 ** (math.floor(math.log10(y_max)) - 4) if y_max > 0 else 1.0
    width = 0.85  # fixed: the outline trace holds a few bars, and Plotly would size them from their spacing
    packs, bases = _positions(trace, frames[0], grid)
    slots = max(1, *(len(frame.highlight) for frame in frames))
    items = {
        "type": "bar", "x": packs, "base": bases, "y": [_number(w) for w in trace.weight], "width": width,
        "marker": {"color": [_item_colour(i) for i in range(num_items)], "line": {"width": 0}},
        "customdata": [_item_label(i, item_labels) for i in range(num_items)],
        "hovertemplate": "pack %{x}<br>%{customdata}<br>load %{y:,}<extra></extra>", "showlegend": False,
    }
    outlines = {"type": "bar", "width": width, "hoverinfo": "skip", "showlegend": False,
                "marker": {"color": "rgba(0,0,0,0)", "line": {"width": HIGHLIGHT_WIDTH, "color": "black"}},
                **_outlines(trace, frames[0], packs, bases, slots)}
    caption = {"type": "scatter", "mode": "text", "x": [0], "y": [0.5], "xaxis": "x2", "yaxis": "y2",
               "text": [_wrap(captions[0])], "textposition": "middle right", "textfont": {"size": 15},
               "hoverinfo": "skip", "showlegend": False, "cliponaxis": False}
    frame_dicts = []
    for frame, text in zip(frames, captions):
        packs, bases = _positions(trace, frame, grid)
        frame_dicts.append({"name": str(frame.index), "traces": [0, 1, 2],
                            "data": [{"x": packs, "base": bases}, _outlines(trace, frame, packs, bases, slots),
                                     {"text": [_wrap(text)]}]})
    mean = sum(trace.weight) / num_packs
    shapes, annotations = [], []
    for value, label, colour, side in ((mean, "mean", "#444", "left"), (lower_bound, "LB", "#d62728", "right")):
        shapes.append({"type": "line", "xref": "x domain", "yref": "y", "x0": 0, "x1": 1, "y0": value, "y1": value,
                       "line": {"dash": "dash", "color": colour, "width": 2}})
        annotations.append({"xref": "x domain", "yref": "y", "x": 0 if side == "left" else 1, "y": value,
                            "xanchor": side, "yanchor": "bottom", "showarrow": False,
                            "text": f"{label} {value:,.6g}", "font": {"color": colour}})
    play = {"frame": {"duration": frame_ms, "redraw": False}, "fromcurrent": True,
            "transition": {"duration": 0}, "mode": "immediate"}
    still = {"frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}, "mode": "immediate"}
    layout = {
        "barmode": "overlay", "height": 600, "font": FONT, "margin": {"l": 60, "r": 20, "t": 20, "b": 130},
        "xaxis": {"title": {"text": "pack"}, "tickmode": "linear" if num_packs <= 40 else "auto",
                  "range": [-0.6, num_packs - 0.4], "domain": [0, 1]},
        "yaxis": {"title": {"text": "load"}, "range": [0, y_max], "domain": [0, 0.84]},
        # the caption's own invisible axes, above the packs
        "xaxis2": {"range": [0, 1], "visible": False, "fixedrange": True, "anchor": "y2", "domain": [0, 1]},
        "yaxis2": {"range": [0, 1], "visible": False, "fixedrange": True, "anchor": "x2", "domain": [0.87, 1]},
        "shapes": shapes, "annotations": annotations,
        "updatemenus": [{
            "type": "buttons", "direction": "left", "x": 0.0, "y": -0.12, "xanchor": "left", "yanchor": "top",
            "pad": {"r": 10, "t": 10}, "showactive": False,
            "buttons": [
                {"label": "▶ Play", "method": "animate", "args": [None, play]},
                {"label": "❚❚ Pause", "method": "animate", "args": [[None], still]},
            ],
        }],
        "sliders": [{
            "active": 0, "x": 0.2, "len": 0.8, "y": -0.12, "yanchor": "top",
            "currentvalue": {"prefix": "Step ", "font": {"size": 14}},
            "pad": {"t": 10}, "ticklen": 0, "minorticklen": 0,
            "steps": [{"label": str(frame.index), "method": "animate",
                       "args": [[str(frame.index)], still]} for frame in frames],
        }],
    }
    return PrebuiltFigure({"data": [items, outlines, caption], "layout": layout, "frames": frame_dicts})


def restarts_figure(trace: LayerTrace) -> go.Figure:
    """Left: every restart's spread after the fill, kept ones marked. Right:
    each kept candidate's spread over its moves, the winner highlighted."""
    figure = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.1,
                           subplot_titles=("spread after the greedy fill, per restart",
                                           "kept candidates: spread per move"))
    spreads = trace.restart_spreads
    kept = set(trace.kept_restarts)
    figure.add_trace(go.Scatter(
        x=list(range(len(spreads))), y=spreads, mode="markers", name="restart",
        marker={"color": ["#ff7f0e" if r in kept else "#9aa0a6" for r in range(len(spreads))],
                "size": [9 if r in kept else 5 for r in range(len(spreads))]},
        hovertemplate="restart %{x}<br>spread %{y:,}<extra></extra>", showlegend=False,
    ), row=1, col=1)
    winner = trace.chosen_candidate.restart
    figure.add_trace(go.Scatter(x=[winner], y=[spreads[winner]], mode="markers", name="winner",
                                marker={"symbol": "star", "size": 16, "color": "#d62728"}, showlegend=False,
                                hovertemplate="winning restart %{x}<extra></extra>"), row=1, col=1)
    for position, candidate in enumerate(trace.candidates):
        chosen = position == trace.chosen
        history = candidate.spread_history
        figure.add_trace(go.Scatter(
            x=list(range(len(history))), y=history, mode="lines+markers",
            name=f"restart {candidate.restart}" + (" (winner)" if chosen else ""),
            line={"width": 4 if chosen else 1.5, "color": "#d62728" if chosen else None},
            opacity=1.0 if chosen else 0.55, showlegend=chosen,
            hovertemplate=f"restart {candidate.restart}<br>move %{{x}}<br>spread %{{y:,}}<extra></extra>",
        ), row=1, col=2)
    figure.update_xaxes(title_text="restart", row=1, col=1)
    figure.update_xaxes(title_text="move", row=1, col=2)
    figure.update_yaxes(title_text="spread (max - min)", row=1, col=1)
    figure.update_layout(height=380, margin={"l": 60, "r": 10, "t": 40, "b": 40},
                         legend={"orientation": "h", "y": -0.2})
    return figure


def comparison_figure(rows: Sequence[dict], front: Sequence[str] = ()) -> go.Figure:
    """Mean gap to LB against time, one point per packer, both axes log: the
    presets differ by decades, and on a linear axis all but the greedy sit on
    the floor. A packer on the bound (gap 0) is drawn at a floor a decade below
    the smallest gap and says so. The packers named in ``front`` (the Pareto
    front, fastest first) are filled and joined by a line; the others are rings."""
    # Labels take turns above, below and beside their point so neighbours do not overlap.
    positions = ["top center", "bottom center", "middle right", "middle left"]
    ordered = sorted(range(len(rows)), key=lambda i: rows[i]["seconds"])
    place = {index: positions[rank % len(positions)] for rank, index in enumerate(ordered)}
    gaps = [row["mean_gap"] * 100 for row in rows]
    floor = min([g for g in gaps if g > 0] or [1e-4]) / 10
    figure = go.Figure(go.Scatter(
        x=[row["seconds"] for row in rows], y=[max(g, floor) for g in gaps],
        text=[row["packer"] for row in rows], mode="markers+text",
        textposition=[place[i] for i in range(len(rows))],
        customdata=[f"{g:.4g}%" if g > 0 else "0 (on the lower bound)" for g in gaps],
        marker={"size": 14, "symbol": [("circle" if row["packer"] in front or not front else "circle-open")
                                       for row in rows], "line": {"width": 2}},
        hovertemplate="%{text}<br>%{x:.3f} s<br>mean gap %{customdata}<extra></extra>", showlegend=False,
    ))
    if front:
        on_front = [next(i for i, row in enumerate(rows) if row["packer"] == name) for name in front]
        figure.add_trace(go.Scatter(
            x=[rows[i]["seconds"] for i in on_front], y=[max(gaps[i], floor) for i in on_front],
            mode="lines", line={"dash": "dot", "width": 2}, name="Pareto front: nothing both faster and nearer LB",
            hoverinfo="skip"))
        figure.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    figure.update_layout(height=380, margin={"l": 60, "r": 30, "t": 20, "b": 50},
                         # one labelled tick a decade: "0.01, 0.1, 1", never "2 3 ... 0.01 2"
                         xaxis={"title": "time (s)", "type": "log", "dtick": 1, "exponentformat": "none"},
                         yaxis={"title": "mean gap to LB (%)", "ticksuffix": "%", "type": "log", "dtick": 1,
                                "exponentformat": "none"})
    return figure


LESSON_FONT = 18
# The smallest segment label drawn: below this a label is hidden (hover still gives it).
SEGMENT_MIN_FONT = 12
# Arrows of a swap and moved items' outlines (packviz.viz.lesson_style, shared with the GIF).
ARROW_COLOUR = MOVED_COLOUR


def clear_of_lines(values: Sequence[float], lines: Sequence[float | None], text_units: float) -> list[float]:
    """Where each total's text (set on top of its bar, ``text_units`` of load tall) goes so that no
    dashed reference line strikes it: on its bar, or just above the highest line within its
    height. The lines sit under the bars, but through a total's digits they read as crossed out."""
    drawn = sorted(line for line in lines if line is not None)
    placed = []
    for value in values:
        where = value
        for line in drawn:  # upwards: a text lifted over one line may meet the next
            if where - 0.15 * text_units <= line <= where + text_units:
                where = line + 0.15 * text_units
        placed.append(where)
    return placed


def _text_units(font: float, axis_span: float, plot_px: float) -> float:
    """How much of an axis spanning ``axis_span`` over ``plot_px`` pixels a line of ``font`` px type takes."""
    return 1.3 * font * axis_span / max(plot_px, 1.0)


def _short(value: float) -> str:
    # the one rule of texts and charts: a number on a chart reads as in the words beside it
    return format_load(value)


def lesson_figure(trace: LayerTrace, frames: Sequence[Frame], index: int, lower_bound: float,
                  item_labels: Sequence[str] | None = None, dark: bool | None = None,
                  height: int = 600, font: int | None = None) -> go.Figure:
    """One step for a room. Below: each pack's items stacked from 0, labelled
    with item and load, the pack total on top. Above: each pack's distance from
    the mean, zoomed so that a spread of 1 in 200 shows. For a swap, the packs
    before the move (arrows to where the moved items go) beside the packs after."""
    size = font or LESSON_FONT
    frame = frames[index]
    swap = frame.event if frame.phase == "refine" else None
    before = frames[index - 1] if swap is not None and index > 0 else None
    panels = [(before, "before the swap"), (frame, "after the swap")] if before is not None else [(frame, "")]
    # While packs still fill, every pack is below the mean: the distance panel only says so.
    full = frame.phase not in ("start", "fill")
    stack_row = 2 if full else 1
    figure = make_subplots(rows=stack_row, cols=len(panels), shared_xaxes=True, shared_yaxes=True,
                           row_heights=[0.3, 0.7] if full else None, vertical_spacing=0.05, horizontal_spacing=0.04,
                           subplot_titles=[title for _, title in panels] + [""] * len(panels)
                           if before is not None else None)
    # Our own traces, built from numbers we control: Plotly's validation of each bar
    # (a tenth of a second a figure at 288 items) would only slow a presenter's step.
    figure._validate = False
    shapes: list[dict] = []
    # dark=None leaves text colours to the host's theme (Streamlit's follows the
    # app's light or dark mode, which the server cannot know on a first run); the
    # marks below read on either background.
    text_colour = None if dark is None else "#f5f5f5" if dark else "#111111"
    outline = "rgba(128, 128, 128, 0.9)"
    # moved items: a thick magenta outline, outside the item colours and legible on light and dark
    mark = ARROW_COLOUR
    arrow = ARROW_COLOUR
    heavy, light = LB_COLOUR, MEAN_COLOUR
    moved = set(frame.highlight)
    weight = trace.weight
    # the items whose loads make LB, marked once they are all drawn (the LB name says so)
    marked = set(bound_items(weight, trace.num_packs))
    if not marked <= {item for row in frame.slots for item in row if item >= 0}:
        marked = set()
    packs = [f"pack {p}" for p in range(trace.num_packs)]
    # Numbers over the bars only while they fit; hovering gives them for any size.
    roomy = trace.num_packs * len(panels) <= 16
    # Two panels of more than 4 packs: a signed distance per bar ran into its neighbour's
    # ("+2.8+2.8"), so only the two packs of the move keep theirs, and the totals step down.
    crowded = trace.num_packs * len(panels) > 8
    told = {swap.pack_a, swap.pack_b} if swap is not None and crowded else set(range(trace.num_packs))
    segment_font = max(12, size - 6) if crowded and roomy else size - 2
    # where arrows name the moved items, the packs after the move name them the same way
    tagged = before is not None and not (roomy and not crowded)
    queue = _queue(trace, frame) if frame.phase in ("start", "fill") else []
    mean = sum(weight) / trace.num_packs
    deviations = [load - mean for panel, _ in panels for load in panel.loads]
    reach = max(max(abs(d) for d in deviations), abs(lower_bound - mean), 1e-9 * max(mean, 1.0))
    y_max = 1.15 * max(lower_bound, *(max(f.loads) for f in frames))
    top_margin = 70 + (size if crowded and roomy and full and before is not None else 0) \
        if (crowded and before is not None) or queue else 40
    # a total's line of type in load units: the stack row's share of the plot's height
    stack_px = (height - top_margin - 40) * (0.7 * 0.95 if full else 1.0)
    text_units = _text_units(size, y_max, stack_px)
    # and in the distance strip above, whose axis spans 3.2 reaches over its 0.3 share
    strip_units = _text_units(size - 2, 3.2 * reach, (height - top_margin - 40) * 0.3 * 0.95)
    for column, (panel, _) in enumerate(panels, start=1):
        deviation = [load - mean for load in panel.loads]
        if full:
            figure.add_trace(dict(type="bar",
                x=packs, y=deviation, marker={"color": [heavy if d > 0 else light for d in deviation]},
                hovertemplate="%{x}<br>load - mean %{y:,.4g}<extra></extra>", showlegend=False,
            ), row=1, col=column)
            if roomy and not crowded:
                # each distance over its bar (under it when below the mean), and over the LB line where the
                # line would cross it out ("+0.33" sat on it)
                above = clear_of_lines([max(d, 0.0) for d in deviation], [lower_bound - mean], strip_units)
                figure.add_trace(dict(type="scatter", x=packs, y=[a if d > 0 else d for a, d in zip(above, deviation)],
                    mode="text", text=[format_deviation(d, mean) for d in deviation],
                    textposition=["top center" if d > 0 else "bottom center" for d in deviation],
                    textfont={"size": size - 2, "color": text_colour}, cliponaxis=False, hoverinfo="skip",
                    showlegend=False, name="distance to the mean"), row=1, col=column)
        for rank in range(trace.items_per_pack):
            items = [panel.slots[p][rank] for p in range(trace.num_packs)]
            figure.add_trace(dict(type="bar",
                x=packs, y=[weight[i] if i >= 0 else 0 for i in items],
                # many packs: the item alone (its load on hover), which fits a narrow bar at a readable size;
                # crowded but roomy, the number over the load ("23: 98" on one line shrank to 8 px)
                # a moved item among narrow bars is named by a tag of its own (below), not by a label under it
                text=[("" if i < 0 or (i in moved and tagged) else ((f"{i}<br>{_short(weight[i])}" if crowded
                                                                      else f"{i}: {_short(weight[i])}")
                                         + (f" {BOUND_MARK}" if i in marked else "")) if roomy else str(i))
                      for i in items],
                # narrow bars: Plotly's own angle (no textangle) turns a label upright where that fits it
                # larger, as segments there are taller than wide
                textposition="inside", insidetextanchor="middle", **({"textangle": 0} if roomy else {}),
                textfont={"size": segment_font, "color": "#000000"},
                customdata=[_item_label(i, item_labels) for i in items],
                hovertemplate="%{x}<br>%{customdata}<br>load %{y:,}<extra></extra>",
                marker={"color": [item_colour(i, trace.num_items) if i >= 0 else "rgba(0,0,0,0)" for i in items],
                        "line": {"color": [mark if i in moved else outline for i in items],
                                 "width": [5 if i in moved else 1.5 for i in items]}},
                showlegend=False,
            ), row=stack_row, col=column)
        figure.add_trace(dict(type="scatter",
            x=packs, y=clear_of_lines(panel.loads, (lower_bound, mean), text_units), mode="text",
            # crowded, the totals go under the packs (below): over them they touched and the LB line struck them
            text=[f"<b>{_short(v)}</b>" if roomy and not crowded else "" for v in panel.loads],
            textposition="top center", textfont={"size": size - 2 if crowded else size, "color": text_colour},
            hoverinfo="skip",
            showlegend=False, cliponaxis=False,
        ), row=stack_row, col=column)
        lines = [(stack_row, lower_bound, heavy), (stack_row, mean, light)]
        for row, value, colour in [(1, lower_bound - mean, heavy)] * full + lines:
            # what add_hline draws, as a plain shape: add_hline copies the layout each call
            axes = figure.get_subplot(row, column)
            shapes.append({"type": "line", "xref": f"{_ref(axes.xaxis)} domain", "x0": 0, "x1": 1,
                           "yref": _ref(axes.yaxis), "y0": value, "y1": value,
                           "line": {"dash": "dash", "color": colour, "width": 2.5},
                           # under the bars and their numbers: over them it struck the totals next to LB
                           "layer": "below"})
    # Named in the right margin, outside the bars and their totals; LB above, mean below,
    # since the two are often a hair apart.
    figure.layout.shapes = shapes
    y_ref = figure.get_subplot(stack_row, len(panels)).yaxis.plotly_name.replace("axis", "")
    # the right margin fits the longer name ("mean 225.6" was cut at 20 px): about half an em a character
    longest = max(len(f"LB {_short(lower_bound)} = ◆"), len(f"mean {_short(mean)}"))
    right = max(60, round(0.5 * (size - 2) * longest) + 14)
    # far enough apart for two lines of type: LB and mean are often a hair apart
    apart = round(0.7 * (size - 2))
    for value, label, colour, shift in ((lower_bound, "LB", heavy, apart), (mean, "mean", light, -apart)):
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=value, yref=y_ref, yshift=shift,
                              text=f"{label} {_short(value)}" + (f" = {BOUND_MARK}" if label == "LB" and marked
                                                                 else ""),
                              showarrow=False,
                              font={"color": colour, "size": size - 2})
    if before is not None:
        tag_font = max(SEGMENT_MIN_FONT, size - 6)
        _swap_arrows(figure, swap, before, frame, weight, arrow, lift=0.03 * y_max, font=tag_font if tagged else None)
        if tagged:
            # the moved items where they landed: a thin slice's label was left out under its outline
            after_axes = figure.get_subplot(stack_row, 2)
            for item in frame.highlight:
                pack = next(p for p, row in enumerate(frame.slots) if item in row)
                figure.add_annotation(x=pack, y=_segment_middle(frame, pack, item, weight),
                                      xref=_ref(after_axes.xaxis), yref=_ref(after_axes.yaxis),
                                      text=str(item), showarrow=False, name="moved",
                                      **_tag_style(tag_font, arrow))
    if full:
        # three ticks: five in the short strip touched ("1 / 0.5 / 0 / -0.5 / -1")
        figure.update_yaxes(range=[-1.6 * reach, 1.6 * reach], title_text="vs mean", nticks=3, row=1, col=1)
    figure.update_yaxes(range=[0, y_max], title_text="load", row=stack_row, col=1)
    figure.update_yaxes(tickfont={"size": size - 2}, title_font={"size": size},
                        gridcolor="rgba(128,128,128,0.3)", zerolinecolor="rgba(128,128,128,0.6)")
    figure.update_xaxes(tickfont={"size": size})
    if trace.num_packs * len(panels) > 8:
        # "pack 0 pack 1 ..." would run together: the numbers, under one axis title, and of
        # many packs every k-th only (at most 16 numbers across the panels), never rotated;
        # while they fit, each pack's total under its number
        every = _tick_step(trace.num_packs * len(panels))
        shown = range(0, trace.num_packs, every)
        for column, (panel, _) in enumerate(panels, start=1):
            figure.update_xaxes(tickvals=[packs[p] for p in shown], row=stack_row, col=column,
                                ticktext=[f"{p}<br><b>{_short(panel.loads[p])}</b>" if roomy else str(p)
                                          for p in shown], tickfont={"size": size - 4})
        figure.update_xaxes(title_text="pack: number, total" if roomy else "pack", title_font={"size": size - 4},
                            row=stack_row)
    for (panel, title), column in zip(panels, range(1, len(panels) + 1)):
        if not title:
            continue
        heading = figure.layout.annotations[column - 1]
        heading.font.size = size
        if crowded and roomy and full:
            # the two packs of the move say their distance from the mean under the title: as texts over
            # neighbouring narrow bars "+2.83" and "+6.83" touched
            # one pack a line: side by side at 1366 px the two panels' lines ran into each other
            heading.text = title + "<br><span style='font-size: {}px'>{}</span>".format(size - 4, "<br>".join(
                f"pack {p} " + format_deviation(panel.loads[p] - mean, mean)
                for p in sorted(told)))
    if queue:
        # the items still to place, in the order the fill takes them, the next one first and marked
        words = queue_line(queue, "▶ ")
        figure.add_annotation(x=0, xref="paper", xanchor="left", y=1, yref="paper", yanchor="bottom", yshift=6,
                              text=f"still to place: {words}", showarrow=False, name="queue",
                              font={"size": size - 4, "color": text_colour})
    figure.update_layout(
        # many packs: thinner gaps, so that a bar holds its label at a readable size
        barmode="relative", bargap=0.25 if roomy else 0.1, height=height,
        # A label Plotly would shrink below this to fit its segment is left out, not drawn unreadable.
        # Plotly sets every label at the size the tightest one fits: a thin slice's "0: 13" took all of them
        # to 13 px on a projector, where they had room for 20; a label that would need much less is left out
        uniformtext={"minsize": max(SEGMENT_MIN_FONT, segment_font - 4), "mode": "hide"},
        template=None if dark is None else "plotly_dark" if dark else "plotly_white",
        font={"size": size, "color": text_colour},
        margin={"l": 80, "r": right, "t": top_margin, "b": 40},
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
    )
    return figure


# how many of the items still to place the fill's queue names (the rest are counted)
QUEUE_SHOWN = 8
# About the characters a chart's top line holds at a room's type on a laptop (the chart beside the
# narration in Present at 1366 px): eight entries ran off its right edge, cut mid-word.
QUEUE_CHARACTERS = 56


def queue_line(queue: Sequence[str], first_mark: str = "") -> str:
    """What is still to place, the next first and in bold: as many entries as fit
    ``QUEUE_CHARACTERS`` (``QUEUE_SHOWN`` at most), then how many more."""
    shown = [queue[0]]
    for entry in queue[1:QUEUE_SHOWN]:
        if len(" · ".join([first_mark + queue[0], *shown[1:], entry])) + len(" · +99 more") > QUEUE_CHARACTERS:
            break
        shown.append(entry)
    rest = len(queue) - len(shown)
    return " · ".join([f"<b>{first_mark}{shown[0]}</b>", *shown[1:]]) + (f" · +{rest} more" if rest else "")


def _queue(trace: LayerTrace, frame: Frame) -> list[str]:
    """The items the fill has still to place after ``frame``, in its order: "item (load)" each."""
    placed = {item for row in frame.slots for item in row if item >= 0}
    # the lesson's frames are the chosen candidate's story
    return [f"{event.item} ({_short(event.load)})" for event in trace.chosen_candidate.placements
            if event.item not in placed]


def _tick_step(bars: int, most: int = 16) -> int:
    """Every how many packs an x axis is numbered so that ``bars`` bars across the
    panels carry at most ``most`` numbers: 1, 2, 5, 10, 20, 50, ..."""
    step = 1
    while bars / step > most:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2
    return step


def _ref(axis) -> str:
    """'x2' for layout.xaxis2: how shapes and annotations name an axis."""
    return axis.plotly_name.replace("axis", "")


# Where an arrow starts and ends across a pack's band: at the bar's edge (0.375 of the band
# wide each side at bargap 0.25) that faces the other pack, clear of the item labels in the middle.
ARROW_INSET = 0.34


def _segment_middle(frame: Frame, pack: int, item: int, weight: Sequence[float]) -> float:
    """The height of the middle of ``item``'s segment in ``pack``'s stack in ``frame``."""
    row = frame.slots[pack]
    return sum(weight[i] for i in row[:row.index(item)] if i >= 0) + weight[item] / 2


def _tag_style(font: int, colour: str) -> dict:
    """A moved item's name on a chart: dark digits on a light tag outlined in the moved colour."""
    return {"font": {"size": font, "color": "#000000"}, "bgcolor": "rgba(255,255,255,0.9)",
            "bordercolor": colour, "borderwidth": 2, "borderpad": 1}


def _swap_arrows(figure: go.Figure, swap, before: Frame, after: Frame, weight: Sequence[float], colour: str,
                 lift: float, font: int | None = None) -> None:
    """Arrows in the 'before' panel, one per moved item: from the item, on the side of
    its bar that faces the other pack, to the height where it lands in that pack (from
    ``after``). Items from pack A go ``lift`` above those heights and items from pack B
    as far below, so a swap reads as opposite arrows side by side, not a knot of lines
    to the top of each pack. With ``font``, each arrow's tail names its item at that size:
    where the bars are narrow, segment labels may be left out (or crossed by the arrows), and the
    moved items are named there."""
    axis = figure.get_subplot(2, 1)
    x_ref, y_ref = axis.xaxis.plotly_name.replace("axis", ""), axis.yaxis.plotly_name.replace("axis", "")

    def centre(frame: Frame, pack: int, item: int) -> float:
        return _segment_middle(frame, pack, item, weight)

    for source, target, items, shift in ((swap.pack_a, swap.pack_b, swap.items_from_a, lift),
                                         (swap.pack_b, swap.pack_a, swap.items_from_b, -lift)):
        side = 1 if target > source else -1
        for item in items:
            # a category axis places numbers by the categories' order: pack p at p
            figure.add_annotation(
                x=target - side * ARROW_INSET, y=centre(after, target, item) + shift,
                ax=source + side * ARROW_INSET, ay=centre(before, source, item) + shift,
                xref=x_ref, yref=y_ref, axref=x_ref, ayref=y_ref, showarrow=True, arrowhead=2, arrowsize=1,
                arrowwidth=3, arrowcolor=colour, text=str(item) if font else "", standoff=0, startstandoff=0,
                **(_tag_style(font, colour) if font else {}),
            )


def _standoff(size: int) -> int:
    """Pixels between the pack numbers and the axis title under them: Plotly measures from its own
    estimate of the ticks, which is smaller than the theme's font draws them (2 px set the title on
    the numbers' descenders at 1366 px)."""
    return round(0.5 * size) + 3


def restart_multiples_figure(trace: LayerTrace, dark: bool | None = None, height: int | None = None,
                             font: int | None = None) -> go.Figure:
    """Each kept restart's packs after its fill, side by side, with its noise
    scale and spread: the same items in another order give another spread."""
    size = font or LESSON_FONT
    from packviz.trace.state import PackState

    candidates = trace.candidates
    columns = min(len(candidates), 3)
    rows = -(-len(candidates) // columns)
    titles = []
    states = []
    for candidate in candidates:
        state = PackState(trace.weight, trace.num_packs)
        for event in candidate.events:
            if event.kind == "placed":
                state.apply(event)
        states.append(state)
        noise = "no noise" if candidate.noise_scale == 0 else f"noise up to {candidate.noise_scale:.0%}"
        # two short lines: one line ran into its neighbours' at 1366 px ("spre[ad 13]restart 5")
        titles.append(f"restart {candidate.restart}: spread {_short(state.spread)}<br>({noise})")
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles, shared_yaxes=True,
                           vertical_spacing=0.3 if rows > 1 else 0.1, horizontal_spacing=0.06)
    best = min(state.spread for state in states)
    for position, state in enumerate(states):
        colour = "#D55E00" if state.spread == best else "#0072B2"
        figure.add_trace(go.Bar(
            x=[str(p) for p in range(trace.num_packs)], y=state.loads, marker_color=colour,
            text=[_short(v) for v in state.loads], textposition="outside", cliponaxis=False, showlegend=False,
            textfont={"size": size - 4}, constraintext="none",
            hovertemplate="pack %{x}<br>load %{y:,}<extra></extra>",
        ), row=position // columns + 1, col=position % columns + 1)
    low = min(min(state.loads) for state in states)
    high = max(max(state.loads) for state in states)
    margin = max(high - low, 1.0)
    figure.update_yaxes(range=[max(0.0, low - 1.5 * margin), high + 0.8 * margin], tickfont={"size": size - 6})
    # pack numbers under one axis title: "pack 0 pack 1 ..." in 12 px did not fit a small chart
    figure.update_xaxes(type="category", tickfont={"size": size - 4})
    figure.update_xaxes(title_text="pack", title_font={"size": size - 6}, title_standoff=_standoff(size),
                        automargin=True, row=rows)
    figure.update_annotations(font_size=size - 4)
    template = None if dark is None else "plotly_dark" if dark else "plotly_white"
    figure.update_layout(height=height or 300 * rows, template=template, font={"size": size - 2},
                         # the ticks, the standoff and the title's line
                         margin={"l": 50, "r": 10, "t": 60,
                                 "b": round(1.3 * (size - 4) + _standoff(size) + 1.3 * (size - 6))},
                         paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return figure


KEPT_COLOUR, DROPPED_COLOUR, WINNER_COLOUR = "#0072B2", "rgba(150, 150, 150, 0.55)", "#D55E00"


def _lesson_layout(figure: go.Figure, dark: bool | None, height: int, size: int) -> go.Figure:
    text_colour = None if dark is None else "#f5f5f5" if dark else "#111111"
    figure.update_annotations(font_size=size)
    figure.update_xaxes(tickfont={"size": size - 2})
    figure.update_yaxes(tickfont={"size": size - 2}, gridcolor="rgba(128,128,128,0.3)")
    figure.update_layout(height=height, template=None if dark is None else "plotly_dark" if dark else "plotly_white",
                         font={"size": size, "color": text_colour}, showlegend=False,
                         margin={"l": 60, "r": 20, "t": 60, "b": 40},
                         paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return figure


def pruning_figure(trace: LayerTrace, dark: bool | None = None, height: int = 500,
                   font: int | None = None) -> go.Figure:
    """Every restart's spread after its fill, side by side: the kept ones in
    blue, the dropped ones grey, the greedy (restart 0) named."""
    size = font or LESSON_FONT
    spreads = trace.restart_spreads
    kept = set(trace.kept_restarts)
    names = [f"restart {r}" + (" (greedy)" if r == 0 else "") for r in range(len(spreads))]
    colours = [KEPT_COLOUR if r in kept else DROPPED_COLOUR for r in range(len(spreads))]
    figure = go.Figure(go.Bar(
        x=names, y=spreads, marker={"color": colours, "line": {"color": "rgba(128,128,128,0.9)", "width": 1.5}},
        text=[f"<b>{_short(s)}</b><br>{'kept' if r in kept else 'dropped'}" for r, s in enumerate(spreads)],
        textposition="outside", cliponaxis=False, textfont={"size": size},
        hovertemplate="%{x}<br>spread after the fill %{y:,}<extra></extra>",
    ))
    figure.update_yaxes(title_text="spread after the fill", range=[0, 1.35 * max(max(spreads, default=1), 1e-9)])
    figure.update_layout(title={"text": f"pruning: {len(kept)} of {len(spreads)} restarts kept",
                                "font": {"size": size}})
    return _lesson_layout(figure, dark, height, size)


def candidates_figure(trace: LayerTrace, finals: Sequence[Sequence[float]], dark: bool | None = None,
                      height: int = 500, lower_bound: float | None = None, font: int | None = None) -> go.Figure:
    """Each kept candidate's packs at the end of its refinement, side by side;
    ``finals[c]`` [m] are candidate c's pack loads. The winner in orange."""
    size = font or LESSON_FONT
    candidates = trace.candidates
    winner = trace.chosen
    columns = min(len(candidates), 3)
    rows = -(-len(candidates) // columns)
    titles = [f"restart {c.restart}" + (" (wins)" if i == winner else "") + f"<br>spread {_short(max(f) - min(f))}"
              for i, (c, f) in enumerate(zip(candidates, finals))]
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles, shared_yaxes=True,
                           vertical_spacing=0.3 if rows > 1 else 0.1, horizontal_spacing=0.06)
    low = min(min(f) for f in finals)
    high = max(max(f) for f in finals)
    margin = max(high - low, 1.0)
    # a load's line of type in load units, on the zoomed axis of one small chart
    chart_px = (height - 100) / rows * (1 - (0.3 if rows > 1 else 0.0))
    text_units = _text_units(size - 4, 2.3 * margin, chart_px)
    for position, loads in enumerate(finals):
        packs = [str(p) for p in range(trace.num_packs)]
        cell = {"row": position // columns + 1, "col": position % columns + 1}
        figure.add_trace(go.Bar(
            x=packs, y=list(loads), marker_color=WINNER_COLOUR if position == winner else KEPT_COLOUR,
            hovertemplate="pack %{x}<br>load %{y:,}<extra></extra>", showlegend=False), **cell)
        if trace.num_packs * columns <= 24:
            # over each bar, or over the LB line where it would strike the number ("178" was crossed out)
            figure.add_trace(go.Scatter(
                x=packs, y=clear_of_lines(loads, [lower_bound], text_units), mode="text",
                text=[_short(v) for v in loads], textposition="top center", cliponaxis=False,
                textfont={"size": size - 4}, hoverinfo="skip", showlegend=False), **cell)
    figure.update_yaxes(range=[max(0.0, low - 1.5 * margin), high + 0.8 * margin])
    figure.update_xaxes(type="category")
    figure.update_xaxes(title_text="pack", title_font={"size": size - 6}, title_standoff=_standoff(size),
                        automargin=True, row=rows)
    if lower_bound is not None:
        figure.add_hline(y=lower_bound, line={"dash": "dash", "color": WINNER_COLOUR, "width": 2}, layer="below")
    figure = _lesson_layout(figure, dark, height, size)
    figure.update_annotations(font_size=size - 4)
    figure.update_xaxes(tickfont={"size": size - 4})
    figure.update_yaxes(tickfont={"size": size - 6})
    return figure


# An item below this share of the tallest column is a sliver: no room for its label.
SLIVER = 0.06


def merge_figure(weight: Sequence[float], stage, dark: bool | None = None, height: int = 500,
                 font: int | None = None, lower_bound: float | None = None) -> go.Figure:
    """One stage of a differencing fill (a ``packviz.teach.differencing.Merged``):
    every live row side by side, each column its items stacked, the row that
    just took another outlined."""
    size = font or LESSON_FONT
    rows = stage.rows
    columns = len(rows)
    titles = []
    for row_id, row in zip(stage.row_ids, rows):
        sums = [sum(weight[i] for i in column) for column in row]
        merged = f" (took row {stage.taken})" if row_id == stage.into else ""
        # two lines: on one, four rows' titles ran together at 1366 px
        titles.append(f"row {row_id}{merged}<br>spread {_short(max(sums) - min(sums))}")
    figure = make_subplots(rows=1, cols=columns, subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.03)
    figure._validate = False
    depth = max(len(column) for row in rows for column in row)
    text_fits = sum(len(row) for row in rows) <= 24
    top = max(sum(weight[i] for i in column) for row in rows for column in row)
    # a sum's line of type in load units: the axis reaches 1.2 x the tallest, over the height between the margins
    text_units = _text_units(size - 2, 1.2 * max(top, lower_bound or 0.0, 1e-9), height - 100)
    for position, (row_id, row) in enumerate(zip(stage.row_ids, rows), start=1):
        just_merged = row_id == stage.into
        for level in range(depth):
            items = [column[level] if level < len(column) else -1 for column in row]
            figure.add_trace(dict(type="bar",
                x=[str(s) for s in range(len(row))], y=[weight[i] if i >= 0 else 0 for i in items],
                marker={"color": [item_colour(i, len(weight)) if i >= 0 else "rgba(0,0,0,0)" for i in items],
                        "line": {"color": ARROW_COLOUR if just_merged else "rgba(128,128,128,0.9)",
                                 "width": 4 if just_merged else 1.5}},
                # a sliver's label would shrink to a smudge on the total over it: its load is that total
                text=[f"{i}: {_short(weight[i])}" if i >= 0 and text_fits and weight[i] >= SLIVER * top else ""
                      for i in items],
                textposition="inside", insidetextanchor="middle", textangle=0,
                textfont={"size": size - 3, "color": "#000000"},
                hovertemplate="column %{x}<br>load %{y:,}<extra></extra>", showlegend=False,
            ), row=1, col=position)
        sums = [sum(weight[i] for i in column) for column in row]
        # the last merge's sums clear of its LB line ("185" sat on "LB 186")
        lifted = clear_of_lines(sums, [lower_bound if columns == 1 else None], text_units)
        figure.add_trace(dict(type="scatter", x=[str(s) for s in range(len(row))], y=lifted, mode="text",
                              text=[f"<b>{_short(v)}</b>" for v in sums], textposition="top center",
                              textfont={"size": size - 2}, hoverinfo="skip", showlegend=False,
                              cliponaxis=False), row=1, col=position)
    figure.update_yaxes(range=[0, 1.2 * max(top, lower_bound or 0.0, 1e-9)])
    # categories, not numbers: the last merge (one row) read -0.5 .. 2.5; one row left is the packs
    figure.update_xaxes(type="category", title_text="pack" if columns == 1 else "column",
                        title_font={"size": size - 6}, title_standoff=_standoff(size), automargin=True)
    if lower_bound is not None and columns == 1:
        figure.add_hline(y=lower_bound, line={"dash": "dash", "color": "#D55E00", "width": 2.5}, layer="below")
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=lower_bound, yref="y",
                              text=f"LB {_short(lower_bound)}", showarrow=False,
                              font={"color": "#D55E00", "size": size - 2})
    figure.update_layout(barmode="stack", bargap=0.2)
    figure = _lesson_layout(figure, dark, height, size)
    figure.update_annotations(selector={"text": f"LB {_short(lower_bound)}"} if lower_bound is not None else {},
                              font_size=size - 2)
    if lower_bound is not None and columns == 1:
        figure.update_layout(margin={"r": round(0.5 * (size - 2) * len(f"LB {_short(lower_bound)}")) + 14})
    figure.update_annotations(font_size=size - 4, selector=lambda a: a.text and a.text.startswith("row "))
    return figure


def lesson_step_figure(trace: LayerTrace, frames: Sequence[Frame], index: int, lower_bound: float,
                       dark: bool | None = None, height: int = 500, font: int | None = None) -> go.Figure:
    """What a Learn step draws: the restarts side by side at pruning, the
    candidates side by side at the final choice, the rows at a differencing
    merge, and the packs (``lesson_figure``) everywhere else."""
    event = frames[index].event
    if event.kind == "merged":
        return merge_figure(trace.weight, event, dark, height, font, lower_bound)
    if event.kind == "pruned" and len(event.restart_spreads) > 1:
        if len(trace.candidates) == len(event.restart_spreads) and len(trace.candidates) <= 8:
            return restart_multiples_figure(trace, dark, height, font)
        return pruning_figure(trace, dark, height, font)
    if event.kind == "chosen" and len(trace.candidates) > 1:
        finals = [build_frames(trace, c)[-1].loads for c in range(len(trace.candidates))]
        return candidates_figure(trace, finals, dark, height, lower_bound, font)
    return lesson_figure(trace, frames, index, lower_bound, dark=dark, height=height, font=font)


def bars_figure(bars, dark: bool | None = None, height: int = 500, font: int | None = None) -> go.Figure:
    """An EPLB step's bars (a ``packviz.teach.eplb_lessons.Bars``): each bar
    stacked from its pieces, one colour per piece label, each slice named with
    its load (so a bar's sum can be checked), marked bars outlined; the mean and,
    where the bars are GPUs or nodes, the lower bound named in the right margin;
    what is still to place listed above, the next one first."""
    size = font or LESSON_FONT
    figure = go.Figure()
    figure._validate = False
    colour_of = piece_colours([label for bar in bars.parts for label, _ in bar])
    depth = max((len(bar) for bar in bars.parts), default=0)
    crowded = len(bars.labels) > 6
    high = max(max(bars.totals, default=1.0), bars.line or 0.0, bars.bound or 0.0, 1e-9)
    top = 90 if bars.queue else 60
    # the plot's height: the figure's less its margins and the tick labels' lines ("GPU 2<br>(node 1)": two)
    tick_lines = 2 if any(" (" in label for label in bars.labels) else 1
    plot_px = max(height - top - 40 - 1.3 * size * tick_lines, 1)
    px_per_unit = plot_px / (1.2 * high)
    for level in range(depth):
        pieces = [bar[level] if level < len(bar) else ("", 0.0) for bar in bars.parts]
        short = [short_piece_label(label) for label, _ in pieces]
        figure.add_trace(dict(type="bar", x=list(bars.labels), y=[value for _, value in pieces],
                              marker={"color": [colour_of.get(label, "rgba(0,0,0,0)") for label, _ in pieces],
                                      "line": {"color": [ARROW_COLOUR if b in bars.marked else "rgba(128,128,128,0.9)"
                                                         for b in range(len(pieces))],
                                               "width": [4 if b in bars.marked else 1.5 for b in range(len(pieces))]}},
                              # a slice too thin for its lines at a readable size is left unnamed (its load on
                              # hover): Plotly shrank "e7 17" to 7 px to fit it
                              # and a bar that is one piece of its own name says it under the bar and its value
                              # over it: "plan B (mean of the last 4): 0.8693" inside shrank to 12 px
                              text=[f"{name}{'<br>' if crowded else ': '}{_short(value)}"
                                    if value * px_per_unit >= (2 if crowded else 1) * 1.25 * SEGMENT_MIN_FONT
                                    and not (len(bars.parts[b]) == 1 and label == bars.labels[b]) else ""
                                    for b, (name, (label, value)) in enumerate(zip(short, pieces))],
                              customdata=[label for label, _ in pieces],
                              textposition="inside", insidetextanchor="middle", textangle=0,
                              textfont={"size": size - 4, "color": "#000000"}, showlegend=False,
                              hovertemplate="%{x}<br>%{customdata}: %{y:,.4g}<extra></extra>"))
    totals = bars.totals
    references = [(bars.line, bars.line_label, "#3D9BE0", -1)] if bars.line is not None else []
    if bars.bound is not None:
        references.append((bars.bound, "LB", "#D55E00", 1))
    # a total's line of type in load units, so that no reference line strikes it
    text_units = _text_units(size - 2, 1.2 * high, plot_px)
    figure.add_trace(dict(type="scatter", x=list(bars.labels), y=clear_of_lines(totals, [bars.line, bars.bound],
                                                                                   text_units), mode="text",
                          text=[f"<b>{_short(v)}</b>" for v in totals], textposition="top center",
                          # many bars: neighbours' "97.25" and "104.25" ran into each other
                          textfont={"size": size - 6 if crowded else size - 2}, hoverinfo="skip", showlegend=False,
                          cliponaxis=False))
    # far enough apart for two lines of type: "LB 96.25" and "mean 96.25" are often one value
    apart = round(0.7 * (size - 2))
    for value, label, colour, side in references:
        # named in the right margin, off the bars and their totals ("mean slot 45.11" sat on a bar)
        figure.add_hline(y=value, line={"dash": "dash", "color": colour, "width": 2.5}, layer="below")
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=value, yref="y", yshift=side * apart,
                              text=f"{label} {_short(value)}", showarrow=False,
                              font={"color": colour, "size": size - 2})
    longest = max((len(f"{label} {_short(value)}") for value, label, _, _ in references), default=0)
    right = max(20, round(0.5 * (size - 2) * longest) + 14)
    if bars.queue:
        # the queue, next first: what the room predicts from
        figure.add_annotation(x=0, xref="paper", xanchor="left", y=1.0, yref="paper", yanchor="bottom", yshift=4,
                              text=f"still to place: {queue_line(bars.queue)}",
                              showarrow=False, font={"size": size - 4})
    figure.update_yaxes(range=[0, 1.2 * high], title_text=bars.axis, title_font={"size": size})
    # "GPU 2 (node 1)" on two lines: on one, four of them turned on their side
    figure.update_xaxes(tickvals=list(bars.labels), ticktext=[label.replace(" (", "<br>(") for label in bars.labels])
    figure.update_layout(barmode="stack", bargap=0.25, title={"text": bars.title, "font": {"size": size}})
    figure = _lesson_layout(figure, dark, height, size)
    figure.update_layout(margin={"r": right, "t": top})
    return figure
