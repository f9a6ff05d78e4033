"""A lesson's animation as an animated GIF, for slides: pure, Pillow only.

Each frame is drawn as a stacked bar chart: one bar per pack, one segment per
item in rank order (rank 0 at the bottom), each item in one colour for the
whole animation (the 8 Okabe-Ito colours, cycling; in the dark style their
black is a light grey), a thin line of the background between segments so
neighbours of the same colour stay apart, and a thick outline around the
items the frame's event placed or moved. Segments carry their item number
(and load, and the item's label, where they fit), each bar its pack total;
dashed lines mark the mean pack load and the lower bound. The frame's caption
is wrapped at the top in a large font (shrunk a little for long captions; past
4 lines, 5 from 700 pixels high, it is cut with "…"), and "frame 15 of 19 ·
refinement" is written above the plot's right corner.

The y axis: while the fill runs it starts at 0. Once the placement is
complete (pruning, refinement, the result) the loads are usually all far
above zero and differ by little, so that part of the animation breaks its
axis near the smallest pack load: loads from there up fill most of the plot,
so the spread shows, while 0 to there is squeezed into a shaded band at the
bottom (so the items down there, and their outlines when they move, still
show). The axis label says so ("load (axis from 9,800; 0 to 9,800 squeezed
below the zigzag)") and a zigzag crosses the bars at the break. When the
loads are not far above zero the axis stays at 0 throughout.

At most :data:`MAX_FRAMES` frames are drawn: a longer story is sampled
evenly, always keeping the first and last frame, so a big layer does not make
a huge file (each sampled frame still shows ``frame_ms``). The last frame is
shown :data:`LAST_FRAME_HOLD` times as long.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFont, features

from packviz.teach.narration import fmt
from packviz.trace.events import Swapped
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame
from packviz.viz.lesson_style import LB_COLOUR, MEAN_COLOUR, MOVED_COLOUR, OKABE_ITO, item_rgb, rgb

MAX_FRAMES = 400
"""The most frames a GIF holds; longer stories are sampled evenly (first and last kept)."""
LAST_FRAME_HOLD = 3
"""The last frame is shown this many times ``frame_ms``."""

PHASE_WORDS = {"start": "start", "fill": "fill", "prune": "pruning", "refine": "refinement", "stop": "stop",
               "final": "result"}

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]


def _rgb(colour: str) -> RGB:
    return rgb(colour)


@dataclass(frozen=True)
class Style:
    background: RGB
    foreground: RGB
    muted: RGB
    grid: RGB
    mean: RGB
    bound: RGB
    items: tuple[RGB, ...]

    @property
    def highlight(self) -> RGB:
        """The thick outline of the items an event placed or moved: the page's, in both themes."""
        return rgb(MOVED_COLOUR)


# the page's colours (packviz.viz.lesson_style): items, mean and LB look the same in the GIF
LIGHT = Style(background=(255, 255, 255), foreground=(20, 20, 20), muted=(85, 85, 85), grid=(228, 228, 228),
              mean=rgb(MEAN_COLOUR), bound=rgb(LB_COLOUR), items=tuple(rgb(c) for c in OKABE_ITO))
DARK = Style(background=(14, 17, 23), foreground=(236, 236, 236), muted=(175, 175, 175), grid=(52, 55, 64),
             mean=rgb(MEAN_COLOUR), bound=rgb(LB_COLOUR), items=tuple(rgb(c) for c in OKABE_ITO))


def style(dark: bool = False) -> Style:
    return DARK if dark else LIGHT


def item_colour(item: int, dark: bool = False, num_items: int = len(OKABE_ITO)) -> RGB:
    """The fill colour of ``item`` of ``num_items``, the same in every frame and as on the page."""
    return item_rgb(item, num_items)


def _text_on(colour: RGB) -> RGB:
    return (0, 0, 0) if 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 140 else (255, 255, 255)


@dataclass(frozen=True)
class ChartLayout:
    """Where one frame's plot lies in the image and which loads its y axis spans.

    ``left, top, right, bottom`` bound the plot area in pixels. With
    ``y_min`` 0 the axis runs from 0 at ``bottom`` to ``y_max`` at ``top``.
    With ``y_min`` above 0 the axis is broken: loads 0 to ``y_min`` are
    squeezed into the lowest ``squeezed`` pixels (so every item, and every
    highlight, still shows) and ``y_min`` to ``y_max`` fill the rest.
    """

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    y_min: float
    y_max: float
    num_packs: int
    squeezed: int = 0

    @property
    def zoomed(self) -> bool:
        """Whether the axis is broken at ``y_min`` (above 0)."""
        return self.y_min > 0

    @property
    def break_px(self) -> int:
        """The pixel row of ``y_min``: the break of a zoomed axis, else ``bottom``."""
        return self.bottom - self.squeezed if self.zoomed else self.bottom

    def y_px(self, value: float) -> float:
        if self.zoomed and value < self.y_min:
            return self.bottom - value / self.y_min * self.squeezed
        split = self.break_px
        return split - (value - self.y_min) / (self.y_max - self.y_min) * (split - self.top)

    def bar_span(self, pack: int) -> tuple[int, int]:
        """The left and right pixel of pack ``pack``'s bar."""
        slot = (self.right - self.left) / self.num_packs
        x0 = self.left + slot * (pack + 0.15)
        return round(x0), round(x0 + slot * 0.7)

    def segment_box(self, slots: Sequence[Sequence[int]], weight: Sequence[float], pack: int,
                    rank: int) -> Box | None:
        """``(x0, y0, x1, y1)`` of the item in slot (pack, rank), y0 the top; None
        for an empty slot. A pack's segments stack in rank order from the bottom
        and share their edges."""
        item = slots[pack][rank]
        if item < 0:
            return None
        base = sum(weight[i] for i in slots[pack][:rank] if i >= 0)
        x0, x1 = self.bar_span(pack)
        return x0, round(self.y_px(base + weight[item])), x1, round(self.y_px(base))

    def clip(self, box: Box) -> Box | None:
        """``box`` cut to the plot area; None when nothing of it shows."""
        x0, y0, x1, y1 = box
        y0, y1 = max(y0, self.top), min(y1, self.bottom)
        return (x0, y0, x1, y1) if y1 > y0 else None


class _Face:
    """One font size, its glyphs rendered once: FreeType draws a long line in
    milliseconds, so text is set glyph by glyph from this cache (no kerning)."""

    def __init__(self, size: int) -> None:
        if features.check("freetype2"):
            self.font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(size=size)
            ascent, descent = self.font.getmetrics()
            self.height = ascent + descent
        else:  # pragma: no cover - Pillow without FreeType: one small bitmap font
            self.font = ImageFont.load_default()
            self.height = self.font.getbbox("Ag")[3] + 2
        self.size = size
        self._glyphs: dict[str, tuple[float, Image.Image | None, int, int]] = {}
        self._widths: dict[str, float] = {}
        self._labels: dict[str, tuple[Image.Image | None, int, int]] = {}

    def _glyph(self, char: str) -> tuple[float, Image.Image | None, int, int]:
        glyph = self._glyphs.get(char)
        if glyph is None:
            x0, y0, x1, y1 = (round(v) for v in self.font.getbbox(char))
            mask = None
            if x1 > x0 and y1 > y0:
                mask = Image.new("L", (x1 - x0, y1 - y0), 0)
                ImageDraw.Draw(mask).text((-x0, -y0), char, fill=255, font=self.font)
            glyph = self._glyphs[char] = (self.font.getlength(char), mask, x0, y0)
        return glyph

    def width(self, text: str) -> float:
        width = self._widths.get(text)
        if width is None:
            width = self._widths[text] = sum(self._glyph(char)[0] for char in text)
        return width

    def _label(self, text: str) -> tuple[Image.Image | None, int, int]:
        """A short text set once as one mask (labels repeat from frame to frame)."""
        label = self._labels.get(text)
        if label is None:
            pieces, x = [], 0.0
            for char in text:
                advance, mask, dx, dy = self._glyph(char)
                if mask is not None:
                    pieces.append((mask, round(x) + dx, dy))
                x += advance
            if not pieces:
                label = (None, 0, 0)
            else:
                x0, y0 = min(p[1] for p in pieces), min(p[2] for p in pieces)
                x1 = max(p[1] + p[0].width for p in pieces)
                y1 = max(p[2] + p[0].height for p in pieces)
                mask = Image.new("L", (x1 - x0, y1 - y0), 0)
                for piece, px, py in pieces:
                    region = (px - x0, py - y0, px - x0 + piece.width, py - y0 + piece.height)
                    mask.paste(ImageChops.lighter(mask.crop(region), piece), region)
                label = (mask, x0, y0)
            self._labels[text] = label
        return label

    def draw(self, image: Image.Image, xy: tuple[float, float], text: str, colour: RGB) -> None:
        x, y = xy
        if len(text) <= 16:
            mask, dx, dy = self._label(text)
            if mask is not None:
                image.paste(colour, (round(x) + dx, round(y) + dy), mask)
            return
        for char in text:
            advance, mask, dx, dy = self._glyph(char)
            if mask is not None:
                image.paste(colour, (round(x) + dx, round(y) + dy), mask)
            x += advance


@lru_cache(maxsize=64)
def _face(size: int) -> _Face:
    return _Face(size)


class _Fonts:
    def __init__(self, caption: int, segment: int, tick: int) -> None:
        self.caption, self.segment, self.tick = _face(caption), _face(segment), _face(tick)


def _wrap(text: str, face: _Face, width: float) -> list[str]:
    lines: list[str] = []
    line, line_width, space = "", 0.0, face.width(" ")
    for word in text.split():
        word_width = face.width(word)
        if line and line_width + space + word_width > width:
            lines.append(line)
            line, line_width = word, word_width
        elif line:
            line, line_width = f"{line} {word}", line_width + space + word_width
        else:
            line, line_width = word, word_width
    return [*lines, line] if line else lines


def _nice_step(span: float, target: int = 5) -> float:
    raw = max(span, 1e-12) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _settled(frame: Frame) -> bool:
    """Past the fill with every slot taken: the part whose axis may start above 0."""
    return frame.phase not in ("start", "fill") and all(item >= 0 for row in frame.slots for item in row)


def _axis_start(frames: Sequence[Frame], references: Sequence[float]) -> float:
    """Near the smallest pack load when the loads are all far above zero, else 0."""
    low = min(min(min(f.loads) for f in frames), *references)
    high = max(max(max(f.loads) for f in frames), *references)
    if low <= 0:
        return 0.0
    span = high - low if high > low else 0.02 * high
    start = low - 2 * span  # the spread then fills about a third of the axis
    step = _nice_step(high - start)
    start = math.floor(start / step) * step
    return start if start > 0.15 * high else 0.0


@dataclass(frozen=True)
class _Plan:
    fonts: _Fonts
    caption_lines: list[list[str]]
    layouts: list[ChartLayout]
    pad: int
    caption_top: int
    axis_label_top: int
    mean: float
    lower_bound: float


def _caption_font_size(captions: Sequence[str], width: int, height: int, max_lines: int) -> int:
    size = max(11, round(height * 0.044))
    smallest = min(size, max(10, round(height * 0.028)))
    longest = sorted(captions, key=len, reverse=True)[:5]
    while size > smallest and any(len(_wrap(c, _face(size), width)) > max_lines for c in longest):
        size -= 1
    return size


def _plan(trace: LayerTrace, frames: Sequence[Frame], lower_bound: float, captions: Sequence[str],
          size: tuple[int, int], break_axis: bool = True) -> _Plan:
    width, height = size
    pad = max(6, round(height * 0.022))
    max_lines = 4 if height < 700 else 5
    text_width = width - 2 * pad
    caption_size = _caption_font_size(captions, text_width, height, max_lines)
    slot = width / max(trace.num_packs, 1)
    segment_size = max(10, min(round(height * 0.034), round(slot * 0.7 * 0.3), caption_size))
    fonts = _Fonts(caption_size, segment_size, max(10, round(height * 0.03)))
    caption_lines = []
    for caption in captions:
        lines = _wrap(caption, fonts.caption, text_width)
        if len(lines) > max_lines:
            lines = [*lines[:max_lines - 1], lines[max_lines - 1] + " …"]
        caption_lines.append(lines)
    header = pad + max((len(lines) for lines in caption_lines), default=1) * fonts.caption.height
    tick_height = fonts.tick.height
    axis_label_top = header + pad // 2
    top = axis_label_top + tick_height + pad // 2
    bottom = height - tick_height - pad
    mean = sum(trace.weight) / trace.num_packs
    references = [mean] + ([lower_bound] if math.isfinite(lower_bound) else [])

    settled = [f for f in frames if _settled(f)]
    starts = {False: 0.0, True: _axis_start(settled, references) if settled and break_axis else 0.0}
    high = max(max(max(f.loads) for f in frames), *references)
    if high <= 0:
        high = 1.0
    # room above the highest bar for its total
    reserve = fonts.segment.height + 6
    squeezed = round(0.2 * (bottom - top))
    ranges = {}
    tick_labels = ["0"]
    for key, start in starts.items():
        upper = bottom - top - (squeezed if start > 0 else 0)
        y_max = high + (high - start) * reserve / max(upper - reserve, 1)
        ranges[key] = (start, y_max)
        tick_labels += [fmt(start), *(fmt(v) for v in _ticks(start, y_max, _nice_step(y_max - start)))]
    left = pad + round(max(fonts.tick.width(t) for t in tick_labels)) + 10
    line_labels = [f"mean {_precise(mean)}"] + ([f"LB {_precise(lower_bound)}"] if len(references) > 1 else [])
    right = width - pad - round(max(fonts.tick.width(t) for t in line_labels)) - 8
    layouts_by_key = {key: ChartLayout(width, height, left, top, right, bottom, y_min, y_max, trace.num_packs,
                                       squeezed if y_min > 0 else 0)
                      for key, (y_min, y_max) in ranges.items()}
    layouts = [layouts_by_key[_settled(f)] for f in frames]
    return _Plan(fonts, caption_lines, layouts, pad, pad, axis_label_top, mean, lower_bound)


def _ticks(start: float, stop: float, step: float) -> list[float]:
    first = math.ceil(start / step - 1e-9)
    return [k * step for k in range(first, math.floor(stop / step + 1e-9) + 1)]


def _precise(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.4g}"


def frame_layouts(trace: LayerTrace, frames: Sequence[Frame], lower_bound: float, captions: Sequence[str],
                  size: tuple[int, int] = (960, 540), break_axis: bool = True) -> list[ChartLayout]:
    """The layout of each frame as :func:`animation_gif` draws it (for frames not
    over :data:`MAX_FRAMES`): a pure function of the trace, frames, bound, captions and size."""
    return _plan(trace, frames, lower_bound, captions, size, break_axis).layouts


def _palette(colours: Style) -> Image.Image:
    """Every colour the frames use, and blends of text over its backgrounds for smooth letters."""
    base = [colours.background, colours.foreground, colours.muted, colours.grid, colours.mean, colours.bound,
            colours.highlight, *colours.items, (0, 0, 0), (255, 255, 255)]
    pairs = [(c, colours.background) for c in (colours.foreground, colours.muted, colours.mean, colours.bound)]
    pairs += [(_text_on(c), c) for c in colours.items]
    pairs += [(colours.foreground, colours.grid), (colours.muted, colours.grid)]
    blends = [tuple(round(a * t + b * (1 - t)) for a, b in zip(text, back))
              for text, back in pairs for t in (0.2, 0.4, 0.6, 0.8)]
    entries = list(dict.fromkeys(base + blends))[:256]
    entries += [colours.background] * (256 - len(entries))
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for colour in entries for v in colour])
    return palette


def _dashed(draw: ImageDraw.ImageDraw, x0: int, x1: int, y: int, colour: RGB, dash: int, gap: int,
            width: int) -> None:
    x = x0
    while x < x1:
        draw.line([(x, y), (min(x + dash, x1), y)], fill=colour, width=width)
        x += dash + gap


def _background(plan: _Plan, layout: ChartLayout, colours: Style) -> Image.Image:
    """What every frame of one layout shares: grid, ticks, axis label and pack names."""
    fonts = plan.fonts
    image = Image.new("RGB", (layout.width, layout.height), colours.background)
    draw = ImageDraw.Draw(image)
    tick_height = fonts.tick.height
    ticks = _ticks(layout.y_min, layout.y_max, _nice_step(layout.y_max - layout.y_min))
    split = layout.break_px
    if layout.zoomed:
        # the squeezed band from 0 to y_min, shaded, with 0 and y_min named
        draw.rectangle((layout.left, split, layout.right, layout.bottom), fill=colours.grid)
        ticks = [0.0, *([layout.y_min] if not ticks or ticks[0] > layout.y_min else []), *ticks]
    for value in ticks:
        y = round(layout.y_px(value))
        draw.line([(layout.left, y), (layout.right, y)], fill=colours.grid, width=1)
        label = fmt(value)
        fonts.tick.draw(image, (layout.left - 8 - fonts.tick.width(label), y - tick_height / 2), label,
                        colours.muted)
    draw.line([(layout.left, layout.top), (layout.left, layout.bottom)], fill=colours.muted, width=1)
    draw.line([(layout.left, layout.bottom), (layout.right, layout.bottom)], fill=colours.muted, width=1)
    axis = "load"
    if layout.zoomed:
        # the break on the axis: a gap with two slanted strokes
        draw.rectangle((layout.left - 5, split - 4, layout.left + 5, split + 4), fill=colours.background)
        for dy in (-4, 4):
            draw.line([(layout.left - 6, split + dy + 3), (layout.left + 6, split + dy - 3)], fill=colours.muted,
                      width=2)
        start = fmt(layout.y_min)
        axis = f"load (axis from {start}; 0 to {start} squeezed below the zigzag)"
        room = layout.width - 3 * plan.pad - fonts.tick.width("frame 400 of 400 · refinement")
        if fonts.tick.width(axis) > room:
            axis = f"load (axis from {start})"
    fonts.tick.draw(image, (plan.pad, plan.axis_label_top), axis, colours.muted)
    slot = (layout.right - layout.left) / layout.num_packs
    last = layout.num_packs - 1
    words = fonts.tick.width(f"pack {last}") <= slot * 0.95
    every = 1 if words else max(1, math.ceil((fonts.tick.width(str(last)) + 6) / slot))
    for pack in range(0, layout.num_packs, every):
        label = f"pack {pack}" if words else str(pack)
        x0, x1 = layout.bar_span(pack)
        fonts.tick.draw(image, ((x0 + x1) / 2 - fonts.tick.width(label) / 2, layout.bottom + 4), label,
                        colours.foreground)
    return image


def _segment_text(item: int, load: float, labels: Sequence[str] | None) -> list[list[str]]:
    """What a segment may say, richest first."""
    options = []
    if labels:
        options.append([str(item), str(labels[item]), fmt(load)])
    options += [[str(item), fmt(load)], [str(item)]]
    return options


def _draw_frame(plan: _Plan, trace: LayerTrace, frame: Frame, index: int, total: int, shown: int,
                base: Image.Image, colours: Style, labels: Sequence[str] | None) -> Image.Image:
    layout = plan.layouts[index]
    fonts = plan.fonts
    image = base.copy()
    draw = ImageDraw.Draw(image)
    weight = trace.weight
    width = layout.width
    thin = max(1, round(width / 960))
    thick = max(3, round(width / 220))
    highlight = set(frame.highlight)
    segment_height = fonts.segment.height
    segments: list[tuple[int, Box]] = []
    for pack, row in enumerate(frame.slots):
        for rank, item in enumerate(row):
            box = layout.segment_box(frame.slots, weight, pack, rank)
            visible = layout.clip(box) if box else None
            if visible is not None:
                draw.rectangle(visible, fill=colours.items[item % len(colours.items)], outline=colours.background,
                               width=thin)
                segments.append((item, visible))
        if layout.zoomed and any(item >= 0 for item in row):
            # where the axis breaks, a zigzag across the bar
            x0, x1 = layout.bar_span(pack)
            teeth = max(2, (x1 - x0) // 12)
            step = (x1 - x0) / teeth
            split = layout.break_px
            draw.line([(x0 + k * step / 2, split - 2 + 4 * (k % 2)) for k in range(2 * teeth + 1)],
                      fill=colours.background, width=2)
    _reference_lines(plan, layout, image, draw, colours)  # over the bars, under outlines and labels
    for item, (x0, y0, x1, y1) in segments:
        if item in highlight:
            draw.rectangle((x0, y0, x1, y1), outline=colours.highlight, width=thick)
            if x1 - x0 > 2 * thick + 2 and y1 - y0 > 2 * thick + 2:
                draw.rectangle((x0 + thick, y0 + thick, x1 - thick, y1 - thick), outline=colours.background,
                               width=1)
        ink = _text_on(colours.items[item % len(colours.items)])
        margin = thick if item in highlight else thin + 1
        split = layout.break_px
        if layout.zoomed and y0 < split < y1:
            # across the break: the label goes in the taller part, off the zigzag
            y0, y1 = (y0, split - 3) if split - y0 >= y1 - split else (split + 3, y1)
        room_w, room_h = x1 - x0 - 2 * margin, y1 - y0 - 2 * margin
        for lines in _segment_text(item, weight[item], labels):
            # digits leave the descent of the last line blank: a quarter line of slack
            if (len(lines) - 0.25) * segment_height <= room_h and \
                    max(fonts.segment.width(line) for line in lines) <= room_w:
                y = (y0 + y1) / 2 - len(lines) * segment_height / 2
                for line in lines:
                    fonts.segment.draw(image, ((x0 + x1) / 2 - fonts.segment.width(line) / 2, y), line, ink)
                    y += segment_height
                break
    slot = (layout.right - layout.left) / layout.num_packs
    for pack, load in enumerate(frame.loads):
        # the pack total above its bar, on a patch of background so the dashed lines do not cross it
        label = fmt(load)
        label_width = fonts.segment.width(label)
        if label_width <= slot:
            x0, x1 = layout.bar_span(pack)
            x, y = (x0 + x1) / 2 - label_width / 2, layout.y_px(load) - segment_height - 2
            draw.rectangle((round(x) - 3, round(y), round(x + label_width) + 3, round(y) + segment_height),
                           fill=colours.background)
            fonts.segment.draw(image, (x, y), label, colours.foreground)
    caption_height = fonts.caption.height
    for number, line in enumerate(plan.caption_lines[index]):
        fonts.caption.draw(image, (plan.pad, plan.caption_top + number * caption_height), line, colours.foreground)
    step = f"frame {shown + 1} of {total} · {PHASE_WORDS.get(frame.phase, frame.phase)}"
    fonts.tick.draw(image, (width - plan.pad - fonts.tick.width(step), plan.axis_label_top), step, colours.muted)
    return image


def _reference_lines(plan: _Plan, layout: ChartLayout, image: Image.Image, draw: ImageDraw.ImageDraw,
                     colours: Style) -> None:
    """The mean and the lower bound: dashed across the plot, named in the right margin, the
    names pushed apart when the lines lie close."""
    fonts = plan.fonts
    lines = [(plan.mean, "mean", colours.mean, 12, 6)]
    if math.isfinite(plan.lower_bound):
        lines.append((plan.lower_bound, "LB", colours.bound, 5, 4))
    text_height = fonts.tick.height
    placed = []
    for value, name, colour, dash, gap in lines:
        y = round(layout.y_px(value))
        _dashed(draw, layout.left, layout.right, y, colour, dash, gap, 2)
        placed.append([y - text_height / 2, f"{name} {_precise(value)}", colour, value])
    if len(placed) == 2 and abs(placed[0][0] - placed[1][0]) < text_height:
        upper, lower = sorted(placed, key=lambda p: -p[3])  # the higher value's name on top
        middle = (upper[0] + lower[0]) / 2
        upper[0], lower[0] = middle - text_height / 2, middle + text_height / 2
    for y, text, colour, _ in placed:
        fonts.tick.draw(image, (layout.right + 6, y), text, colour)


def sample_indices(count: int, cap: int = MAX_FRAMES) -> list[int]:
    """``count`` frames cut to at most ``cap``, evenly, always with the first and last."""
    if count <= cap:
        return list(range(count))
    if cap < 2:
        return [count - 1]
    return sorted({round(k * (count - 1) / (cap - 1)) for k in range(cap)})


def check_frames(frames: Sequence[object], captions: Sequence[str], size: tuple[int, int],
                 smallest: tuple[int, int] = (200, 150)) -> None:
    """ValueError unless there are frames, one caption each, and ``size`` is at least ``smallest``."""
    if len(captions) != len(frames):
        raise ValueError(f"{len(captions)} captions for {len(frames)} frames")
    if not frames:
        raise ValueError("no frames to draw")
    if size[0] < smallest[0] or size[1] < smallest[1]:
        raise ValueError(f"size {size} is too small for a legible chart (at least {smallest[0]} x {smallest[1]})")


def gif_bytes(images: Sequence[Image.Image], frame_ms: int) -> bytes:
    """Palette images as a GIF that loops forever, each shown ``frame_ms``, the last
    :data:`LAST_FRAME_HOLD` times as long."""
    durations = [frame_ms] * len(images)
    durations[-1] = frame_ms * LAST_FRAME_HOLD
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=list(images[1:]), duration=durations, loop=0,
                   optimize=False, disposal=1)
    return buffer.getvalue()


def _render(trace: LayerTrace, frames: Sequence[Frame], captions: Sequence[str], lower_bound: float,
            item_labels: Sequence[str] | None, size: tuple[int, int], dark: bool, steps: Sequence[int],
            total: int, break_axis: bool = True, before: Sequence[Frame | None] | None = None) -> list[Image.Image]:
    colours = _styled(trace, dark)
    plan = _plan(trace, frames, lower_bound, captions, size, break_axis)
    bases: dict[ChartLayout, Image.Image] = {}
    images = []
    for index, frame in enumerate(frames):
        layout = plan.layouts[index]
        if layout not in bases:
            bases[layout] = _background(plan, layout, colours)
        image = _draw_frame(plan, trace, frame, index, total, steps[index], bases[layout], colours, item_labels)
        previous = before[index] if before else None
        if previous is not None and isinstance(frame.event, Swapped):
            _swap_arrows(image, plan, layout, trace, previous, frame)
        images.append(image)
    return images


def _styled(trace: LayerTrace, dark: bool) -> Style:
    """The theme with the lesson's own item colours (one per item past eight, as on the page)."""
    base = style(dark)
    return Style(base.background, base.foreground, base.muted, base.grid, base.mean, base.bound,
                 tuple(item_rgb(i, trace.num_items) for i in range(max(trace.num_items, len(OKABE_ITO)))))


def _swap_arrows(image: Image.Image, plan: _Plan, layout: ChartLayout, trace: LayerTrace, before: Frame,
                 after: Frame) -> None:
    """A swap as the page draws it: an arrow per moved item, from where it was (in ``before``) to
    where it lands, beside the bars' edges; the packs' loads before the move written under the arrows."""
    draw = ImageDraw.Draw(image)
    event = after.event
    colour = rgb(MOVED_COLOUR)
    width = max(3, round(layout.width / 320))
    for source, target, items, lift in ((event.pack_a, event.pack_b, event.items_from_a, -6),
                                        (event.pack_b, event.pack_a, event.items_from_b, 6)):
        side = 1 if target > source else -1
        for item in items:
            old = layout.segment_box(before.slots, trace.weight, source, before.slots[source].index(item))
            new = layout.segment_box(after.slots, trace.weight, target, after.slots[target].index(item))
            if old is None or new is None:
                continue
            x0 = old[2] if side > 0 else old[0]
            x1 = new[0] if side > 0 else new[2]
            y0, y1 = (old[1] + old[3]) / 2 + lift, (new[1] + new[3]) / 2 + lift
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
            angle = math.atan2(y1 - y0, x1 - x0)
            head = 4 * width
            draw.polygon([(x1, y1), (x1 - head * math.cos(angle - 0.45), y1 - head * math.sin(angle - 0.45)),
                          (x1 - head * math.cos(angle + 0.45), y1 - head * math.sin(angle + 0.45))], fill=colour)
    said = (f"before: pack {event.pack_a} {fmt(before.loads[event.pack_a])}, pack {event.pack_b} "
            f"{fmt(before.loads[event.pack_b])}")
    plan.fonts.tick.draw(image, (layout.left + 6, layout.bottom - plan.fonts.tick.height - 4), said, colour)


def render_frames(trace: LayerTrace, frames: Sequence[Frame], captions: Sequence[str], lower_bound: float,
                  item_labels: Sequence[str] | None = None, size: tuple[int, int] = (960, 540),
                  dark: bool = False, break_axis: bool = True) -> list[Image.Image]:
    """Every frame as an RGB image, as the GIF shows it but before sampling and
    its palette (e.g. one frame as a PNG for a handout)."""
    check_frames(frames, captions, size)
    return _render(trace, frames, captions, lower_bound, item_labels, size, dark, range(len(frames)), len(frames),
                   break_axis, [None, *frames[:-1]])


def animation_gif(trace: LayerTrace, frames: Sequence[Frame], captions: Sequence[str], lower_bound: float,
                  item_labels: Sequence[str] | None = None, frame_ms: int = 700,
                  size: tuple[int, int] = (960, 540), dark: bool = False, break_axis: bool = True) -> bytes:
    """The frames as an animated GIF that loops forever: each shown ``frame_ms``,
    the last :data:`LAST_FRAME_HOLD` times as long. ``captions`` (one per frame)
    are written at the top; ``item_labels`` (one per item) name the items in
    their segments where they fit. Over :data:`MAX_FRAMES` frames are sampled
    evenly, the first and last always kept; the step counter then still counts
    the story's own steps. A swap's frame draws an arrow per moved item from where it was; with
    ``break_axis`` False the axis starts at 0 throughout (a lesson's few items stay in proportion)."""
    check_frames(frames, captions, size)
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be positive, got {frame_ms}")
    keep = sample_indices(len(frames))
    images = _render(trace, [frames[i] for i in keep], [captions[i] for i in keep], lower_bound, item_labels,
                     size, dark, keep, len(frames), break_axis, [frames[i - 1] if i > 0 else None for i in keep])
    palette = _palette(_styled(trace, dark))
    return gif_bytes([image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images], frame_ms)
