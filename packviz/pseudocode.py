"""The algorithm as pseudo-code, and which line each event of a run executes.

The lines follow the config (scope, moves, fill, choice), so the Learn page
shows the algorithm that actually ran; ``line_of`` ties every event kind to
one of them, which is what the page highlights as it steps.
"""

from __future__ import annotations

from packviz.config import PackerConfig
from packviz.events import Event

# Lines by role; ``lines`` fills in the words for a config.
RESTARTS, NOISE, SORT, FILL_LOOP, PLACE, PRUNE, REFINE_LOOP, PICK_PACKS, FIND_SWAP, STOP, APPLY, CHOOSE = range(12)


def lines(config: PackerConfig) -> list[str]:
    """The pseudo-code of ``config``, one statement per line."""
    choose = "the smallest heaviest pack" if config.select_by == "max_load" else "the smallest spread"
    if config.start == "snake":
        place = "deal item to packs 0, 1, ..., m-1, then m-1, ..., 0 (snake order)"
    else:
        place = "put item into the lightest pack that still has room"
    if config.swap_scope == "paired":
        pick = "pair the i-th heaviest pack with the i-th lightest, for every i"
    elif config.swap_scope == "top-k":
        pick = f"take the {config.scope_k} heaviest and the {config.scope_k} lightest packs"
    elif config.swap_scope == "heaviest-vs-all":
        pick = "take the heaviest pack and every other pack"
    else:
        pick = "H, L = the heaviest pack, the lightest pack"
    moves = " or ".join(name for name, on in (("1 item for 1", config.one_swap), ("2 items for 2", config.two_swap))
                        if on) or "nothing"
    stop = "if no such swap exists" + (" or max load = lower bound" if config.stop_at_lower_bound else "") + ": stop"
    return [
        f"for each restart r = 0 .. {config.num_restarts - 1}, all at once:",
        f"    s = noise scale of r, from {config.noise_min:g} to {config.noise_max:g} (restart 0: s = 0)",
        "    order = items by load x (1 + U(0,1) x s), heaviest first",
        "    for item in order:",
        f"        {place}",
        f"keep the {config.num_refined} restarts with {choose} (pruning)",
        f"for each kept candidate, up to {config.max_iterations} times:",
        f"    {pick};  D = load(heavier) - load(lighter)",
        f"    find the swap of {moves} that moves d closest to D/2, with 0 < d < D",
        f"    {stop}",
        "    swap the items",
        f"return the candidate with {choose}",
    ]


_LINE_OF_KIND = {
    "fill_started": SORT,
    "placed": PLACE,
    "pruned": PRUNE,
    "swapped": FIND_SWAP,
    "refinement_stopped": STOP,
    "chosen": CHOOSE,
}


def line_of(event: Event) -> int:
    """The line (0-based) that ``event`` executes."""
    return _LINE_OF_KIND[event.kind]
