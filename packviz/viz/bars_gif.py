"""An EPLB chapter's steps as an animated GIF, for slides: pure, Pillow only.

The page draws each step's ``Bars`` with ``figures.bars_figure``; a GIF frame draws the
same step the same way: one bar per GPU, node or expert, stacked from its pieces in the
page's colours (``lesson_style.piece_colours``: an expert keeps its colour through the
chapter), each slice named with its load where it fits, each bar's total above it, the
marked bars outlined in the moved-item colour, the mean and the lower bound as dashed lines
named in the right margin, and what is still to place listed above the plot, the next first.
The step's narration is the caption at the top, "step 4 of 12" in the corner. Every number
is written by ``packviz.text.format_load``, as in the texts and on the page.

Frames that draw the same bars (the steps of one title: experts, nodes or GPUs) share one y
axis, 0 to 1.15 times their largest total, mean or bound, so a bar's growth from step to step
is what the eye sees.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from packviz.teach.eplb_lessons import Bars
from packviz.text import format_load
from packviz.viz.gif import (
    _caption_font_size,
    _dashed,
    _face,
    _nice_step,
    _text_on,
    _wrap,
    check_frames,
    gif_bytes,
    style,
)
from packviz.viz.lesson_style import MOVED_COLOUR, piece_colours, rgb, short_piece_label

MAX_CAPTION_LINES = 5


def _axis_top(steps: Sequence[Bars]) -> float:
    high = max(max((max(bars.totals, default=0.0), bars.line or 0.0, bars.bound or 0.0)) for bars in steps)
    return 1.15 * max(high, 1e-9)


def render_bars(steps: Sequence[Bars], captions: Sequence[str], size: tuple[int, int] = (960, 540),
                dark: bool = False) -> list[Image.Image]:
    """Every step as an RGB image, as the GIF shows it (e.g. one as a PNG for a handout)."""
    check_frames(steps, captions, size, (300, 200))
    width, height = size
    colours = style(dark)
    colour_of = {name: rgb(c) for name, c in
                 piece_colours([label for bars in steps for bar in bars.parts for label, _ in bar]).items()}
    caption_size = _caption_font_size(captions, width - 24, height, MAX_CAPTION_LINES - 1)
    caption_face = _face(caption_size)
    tick_face = _face(max(11, round(height * 0.024)))
    slice_face = _face(max(10, round(height * 0.022)))
    total_face = _face(max(11, round(height * 0.027)))
    # steps that draw the same bars (the experts, the nodes, the GPUs) share one y axis
    axis_tops = {title: _axis_top([b for b in steps if b.title == title]) for title in {b.title for b in steps}}
    references = max((len(f"LB {format_load(b.bound)}") if b.bound is not None else 0 for b in steps), default=0)
    references = max(references, *(len(f"{b.line_label} {format_load(b.line)}") if b.line is not None else 0
                                   for b in steps))
    images = []
    for number, (bars, caption) in enumerate(zip(steps, captions)):
        image = Image.new("RGB", size, colours.background)
        draw = ImageDraw.Draw(image)
        lines = _wrap(caption, caption_face, width - 24)
        if len(lines) > MAX_CAPTION_LINES:
            lines = [*lines[:MAX_CAPTION_LINES - 1], lines[MAX_CAPTION_LINES - 1] + " …"]
        y = 8
        for line in lines:
            caption_face.draw(image, (12, y), line, colours.foreground)
            y += caption_face.height
        corner = f"step {number} of {len(steps) - 1} · {bars.title}"  # as the page counts its steps
        tick_face.draw(image, (width - 12 - tick_face.width(corner), y + 2), corner, colours.muted)
        y += tick_face.height + 6
        if bars.queue:
            queue = " · ".join(bars.queue[:8]) + (f" · +{len(bars.queue) - 8} more" if len(bars.queue) > 8 else "")
            tick_face.draw(image, (12, y), f"still to place: {queue}", colours.foreground)
            y += tick_face.height + 4
        left = 12 + round(tick_face.width(format_load(max(axis_tops.values()))) + 10)
        right = width - 12 - round(tick_face.width("0") * references + 8)
        top = y + total_face.height + 8
        bottom = height - 2 * tick_face.height - 14

        top_of_axis = axis_tops[bars.title]
        step = _nice_step(top_of_axis)

        def y_of(value: float, top: float = top, bottom: float = bottom, axis: float = top_of_axis) -> float:
            return bottom - (bottom - top) * value / axis

        tick = 0.0
        while tick <= top_of_axis + 1e-12:
            ty = round(y_of(tick))
            draw.line([(left, ty), (right, ty)], fill=colours.grid, width=1)
            label = format_load(tick)
            tick_face.draw(image, (left - 6 - tick_face.width(label), ty - tick_face.height / 2), label,
                           colours.muted)
            tick += step
        count = max(len(bars.labels), 1)
        slot = (right - left) / count
        bar_width = slot * 0.75
        for index, (label, pieces) in enumerate(zip(bars.labels, bars.parts)):
            x0 = left + index * slot + (slot - bar_width) / 2
            x1 = x0 + bar_width
            base = 0.0
            for name, value in pieces:
                if value <= 0:
                    continue
                fill = colour_of.get(name, colours.muted)
                box = (round(x0), round(y_of(base + value)), round(x1), round(y_of(base)))
                draw.rectangle(box, fill=fill, outline=colours.background, width=1)
                text = f"{short_piece_label(name)}: {format_load(value)}"
                if slice_face.width(text) > bar_width - 4:
                    text = format_load(value)
                if slice_face.width(text) <= bar_width - 4 and box[3] - box[1] >= slice_face.height:
                    slice_face.draw(image, ((x0 + x1) / 2 - slice_face.width(text) / 2,
                                            (box[1] + box[3]) / 2 - slice_face.height / 2), text, _text_on(fill))
                base += value
            if index in bars.marked:
                outline = max(3, round(width / 320))
                draw.rectangle((round(x0) - outline, round(y_of(base)) - outline, round(x1) + outline, bottom),
                               outline=rgb(MOVED_COLOUR), width=outline)
            total = format_load(base)
            total_face.draw(image, ((x0 + x1) / 2 - total_face.width(total) / 2,
                                    y_of(base) - total_face.height - 4), total, colours.foreground)
            name_lines = label.replace(" (", "\n(").split("\n")
            for row, text in enumerate(name_lines):
                tick_face.draw(image, ((x0 + x1) / 2 - tick_face.width(text) / 2,
                                       bottom + 4 + row * tick_face.height), text, colours.foreground)
        drawn = []
        if bars.line is not None:
            drawn.append((bars.line, f"{bars.line_label} {format_load(bars.line)}", colours.mean))
        if bars.bound is not None:
            drawn.append((bars.bound, f"LB {format_load(bars.bound)}", colours.bound))
        for k, (value, text, colour) in enumerate(sorted(drawn, key=lambda line: -line[0])):
            ly = round(y_of(value))
            _dashed(draw, left, right, ly, colour, 10, 6, 3)
            # two lines close together: the higher one's name above it, the lower one's below
            shift = -tick_face.height - 2 if k == 0 else 2
            tick_face.draw(image, (right + 6, ly + shift), text, colour)
        draw.line([(left, bottom), (right, bottom)], fill=colours.muted, width=1)
        images.append(image)
    return images


def bars_gif(steps: Sequence[Bars], captions: Sequence[str], frame_ms: int = 1400,
             size: tuple[int, int] = (960, 540), dark: bool = False) -> bytes:
    """The steps as an animated GIF that loops forever, each shown ``frame_ms`` (the last
    ``LAST_FRAME_HOLD`` times as long)."""
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be positive, got {frame_ms}")
    images = render_bars(steps, captions, size, dark)
    return gif_bytes([image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
                      for image in images], frame_ms)

