"""How a Learn frame looks, decided once for both of its renderers (Plotly in the page,
Pillow in the GIF): the item colours, the colours of the lower bound, the mean and a
moved item, and how a number is written (``packviz.teach.narration.fmt``, the texts'
rule). A figure and a GIF frame of one step then agree on every colour and number."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

from packviz.teach.narration import fmt

__all__ = ["BOUND_MARK", "LB_COLOUR", "MEAN_COLOUR", "MOVED_COLOUR", "OKABE_ITO", "bound_items", "fmt",
           "item_colour", "item_rgb", "piece_colours", "rgb", "short_piece_label"]

# Okabe & Ito's colour-blind-safe palette (black left out: it hides labels and vanishes on dark).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
LB_COLOUR = "#D55E00"
MEAN_COLOUR = "#3D9BE0"  # a blue that reads on dark backgrounds too
# a moved item's outline and the arrows of a swap: outside the item palette, legible on light and dark
MOVED_COLOUR = "#E7298A"


def item_colour(item: int, num_items: int = len(OKABE_ITO)) -> str:
    """An item's colour: Okabe and Ito's eight while they suffice, else a hue of its own per
    item (golden-angle steps, three lightnesses), so no two items of a lesson share a colour.
    Light enough for black labels."""
    if num_items <= len(OKABE_ITO):
        return OKABE_ITO[item % len(OKABE_ITO)]
    hue = (item * 137.508) % 360
    return f"hsl({hue:.1f}, 70%, {(62, 72, 54)[item % 3]}%)"


def rgb(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` or ``hsl(h, s%, l%)`` as 0-255 RGB."""
    if colour.startswith("#"):
        return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
    hue, saturation, lightness = (float(part.strip(" %")) for part in colour[4:-1].split(","))
    red, green, blue = colorsys.hls_to_rgb(hue / 360, lightness / 100, saturation / 100)
    return round(red * 255), round(green * 255), round(blue * 255)


def item_rgb(item: int, num_items: int = len(OKABE_ITO)) -> tuple[int, int, int]:
    return rgb(item_colour(item, num_items))


def piece_colours(names: Sequence[str]) -> dict[str, str]:
    """The colour of each piece of an EPLB step's bars ("expert 5", "group 1", ...): by its
    number where every name ends in one, so an expert keeps its colour from step to step, else
    by its place among ``names``."""
    names = sorted(set(names), key=lambda n: (len(n), n))
    numbered = all(name.rsplit(" ", 1)[-1].isdigit() for name in names)
    span = 1 + max((int(n.rsplit(" ", 1)[-1]) for n in names), default=0) if numbered else len(names)
    return {name: item_colour(int(name.rsplit(" ", 1)[-1]) if numbered else i, span)
            for i, name in enumerate(names)}


def short_piece_label(name: str) -> str:
    """"expert 5" as "e5", "group 1" as "g1", "node 0" as "n0": a slice's label where room is short."""
    return name.replace("expert ", "e").replace("group ", "g").replace("node ", "n")


# the mark on the items whose loads make the lower bound
BOUND_MARK = "◆"


def bound_items(weight: Sequence[float], num_packs: int) -> tuple[int, ...]:
    """The items [n] whose loads add up to the lower bound LB, when one bound of the family
    (``packviz.metrics.lower_bounds``) is LB and names a few items: the heaviest with the k-1
    lightest (L1), or t+1 of the t*m+1 heaviest with the k-t-1 lightest (L_t). Empty when LB is
    the average pack or a crowding bound (every item, or no one set of items, makes it)."""
    import torch

    from packviz.metrics import lower_bound, lower_bounds

    n = len(weight)
    if n == 0 or n % num_packs:
        return ()
    tensor = torch.tensor([list(weight)], dtype=torch.float64)
    bound = float(lower_bound(tensor, num_packs)[0])
    family = lower_bounds(tensor, num_packs)[0].tolist()
    best = max(range(len(family)), key=lambda i: (family[i], -i))
    if best == 0 or family[best] < bound - 1 + 1e-9:
        return ()
    order = sorted(range(n), key=lambda i: (-weight[i], i))  # heaviest first
    per_pack = n // num_packs
    t = best - 1
    top = order[:1] if t == 0 else order[t * num_packs - t: t * num_packs + 1]
    rest = per_pack - t - 1
    return tuple(sorted([*top, *(order[n - rest:] if rest > 0 else [])]))
