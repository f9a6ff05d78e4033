"""The algorithm as pseudo-code, and which line each event of a run executes.

The lines follow the config (scope, moves, fill, choice), so the Learn page
shows the algorithm that actually ran; ``line_of`` ties every event kind to
one of them, which is what the page highlights as it steps.
"""

from __future__ import annotations

from packviz.config import PackerConfig, restart_noise_scales
from packviz.trace.events import Event

# The role of each line; which lines a config shows depends on what it runs.
(RESTARTS, NOISE, SORT, MERGE, FILL_LOOP, PLACE, PRUNE, REFINE_LOOP, PICK_PACKS, FIND_SWAP, STOP, APPLY,
 CHOOSE) = range(13)

_ROLE_OF_KIND = {
    "fill_started": SORT,
    "placed": PLACE,
    "merged": MERGE,
    "pruned": PRUNE,
    "swapped": FIND_SWAP,
    "refinement_stopped": STOP,
    "chosen": CHOOSE,
}


def _roles(config: PackerConfig) -> list[tuple[int, str]]:
    choose = "the smallest heaviest pack" if config.select_by == "max_load" else "the smallest spread"
    if config.start == "snake":
        place = "deal item to packs 0, 1, ..., m-1, then m-1, ..., 0 (snake order)"
    elif config.start == "differencing" and config.num_restarts > 1:
        place = "restart 0: into the lightest pack with room; others: into the pack the merges gave it"
    else:
        place = "put item into the lightest pack that still has room"
    always = "restart 0 always" if config.select_by == "spread" else "none heavier than restart 0 before it"
    scales = restart_noise_scales(config)
    if config.num_restarts == 1:
        # one plain fill: no restarts, noise or pruning to explain yet
        roles = [
            (SORT, "order = items by load, heaviest first"),
            (FILL_LOOP, "for item in order:"),
            (PLACE, f"    {place}"),
            (PRUNE, "(a single fill: nothing to prune)"),
        ]
    else:
        roles = [
            (RESTARTS, f"for each restart r = 0 .. {config.num_restarts - 1}, all at once:"),
            (NOISE, f"    s = noise scale of r, from {min(scales[1:]):g} to {max(scales):g} (restart 0: s = 0)"
             if max(scales) > 0 else "    (no noise: every restart sorts by the true loads)"),
            (SORT, "    order = items by load x (1 + U(0,1) x s), heaviest first" if max(scales) > 0
             else "    order = items by load, heaviest first"),
            (FILL_LOOP, "    for item in order:"),
            (PLACE, f"        {place}"),
            (PRUNE, f"keep the {config.num_refined} restart{'s' if config.num_refined != 1 else ''} with {choose} "
                    f"(pruning; {always})"),
        ]
        if config.start == "differencing":
            roles.insert(3, (MERGE, "    restarts 1..: rows of m items (one per pack); merge the two rows of "
                                    "largest spread, heaviest pack with lightest, until one row is left"))
    if not config.refines:
        roles.append((STOP, "no refinement: each kept candidate stays as filled"))
    else:
        if config.swap_scope == "paired":
            pick = "pair the i-th heaviest pack with the i-th lightest, for every i"
        elif config.swap_scope == "top-k":
            pick = f"take the {config.scope_k} heaviest and the {config.scope_k} lightest packs"
        elif config.swap_scope == "heaviest-vs-all":
            pick = "take the heaviest pack and every other pack"
        else:
            pick = "H, L = the heaviest pack, the lightest pack"
        moves = " or ".join(name for name, on in (("1 item for 1", config.one_swap),
                                                  ("2 items for 2", config.two_swap)) if on)
        bound = " or max load = lower bound" if config.stop_at_lower_bound else ""
        roles += [
            (REFINE_LOOP, f"for each kept candidate, up to {config.max_iterations} times:"),
            (PICK_PACKS, f"    {pick};  D = load(heavier) - load(lighter)"),
            (FIND_SWAP, f"    find the swap of {moves} moving d closest to D/2, with 0 < d < D"),
            (STOP, f"    if there is no such swap{bound}: stop"),
            (APPLY, "    swap the items"),
        ]
    roles.append((CHOOSE, f"return the candidate with {choose}" if config.num_restarts > 1 else
                  "return the placement"))
    return roles


def lines(config: PackerConfig) -> list[str]:
    """The pseudo-code of ``config``, one statement per line."""
    return [text for _, text in _roles(config)]


def line_of(event: Event, config: PackerConfig) -> int:
    """The line (0-based, into ``lines(config)``) that ``event`` executes."""
    roles = [r for r, _ in _roles(config)]
    role = _ROLE_OF_KIND[event.kind]
    # a merge drawn for a config without a merge line (no restarts) is where its items are placed
    return roles.index(role if role in roles else PLACE)
