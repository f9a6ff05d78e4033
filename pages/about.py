"""How it works: the algorithm, the presets and the lower bound, in words."""

from __future__ import annotations

import streamlit as st

from packviz import PRESETS
from ui.router import require_router

require_router()

st.title("How balanced packing works")
st.markdown(
    """
**The problem.** A MoE layer has *n* items (experts, or replicas of hot experts) with loads (tokens
routed to each). They must go onto *m* packs (GPUs), exactly *n/m* items per pack, so that the heaviest
pack is as light as possible: the slowest GPU sets the pace of the whole step.

**1. Greedy fill (DeepSeek EPLB).** Sort the items, heaviest first, and put each into the lightest pack
that still has room.

**2. Restarts.** Run the fill many times in parallel. Restart 0 is the plain greedy; restart *r* sorts
by the load times `1 + U(0,1)·s_r`, with the noise scale `s_r` rising linearly across restarts, so each
fills in a slightly different order (every item still counts with its true load).

**3. Pruning.** Keep the few restarts with the smallest spread (heaviest minus lightest pack).

**4. Refinement.** Repeatedly pick the best swap between packs: a *1-swap* trades one item of a heavy
pack for one of a light pack; a *2-swap* trades two for two (it only adds new moves with 4 or more items
per pack). A move that shifts load *d* between packs that differ by *D* narrows them when 0 < d < D.

**5. Choice.** The refined candidate with the smallest spread wins.

**packviz's own start** (presets `fast` and `best`). Beside the greedy, they fill by the balanced largest
differencing method: the sorted items are cut into rows of m, each row one item per pack, and the two
rows with the largest spread merge, the heaviest pack of one taking the lightest of the other, until one
row is left (k - 1 merges, vectorised). With many items per pack it usually starts far more even than
the greedy (about 3 times nearer the bound on the default sample), with few it can start worse; both
run, and the greedy stays restart 0, so the result is never worse than it.

**packviz's own moves** (presets `fast` and `best`). Instead of only the heaviest and lightest pack,
every pack is paired with its mirror (the i-th heaviest with the i-th lightest) and all pairs swap at
once; when no pair can improve, the heaviest pack tries every other pack. The best 2-for-2 exchange is
found by a binary search over sorted pair sums rather than by trying all pairs of pairs. Candidates
are kept and chosen by their heaviest pack, and a candidate stops as soon as it reaches the lower bound.

**Lower bound.** With loads sorted w1 ≥ … ≥ wn, total S and k = n/m: L0 = S/m; L1 = w1 + the k-1 smallest;
and for t = 1 … k-1, some pack holds t+1 of the t·m+1 heaviest, so L_t = w(tm-t+1) + … + w(tm+1) + the
k-t-1 smallest. packviz adds a crowding bound (the packs holding more than t of the t·m+j heaviest
items) and rounds up for whole token counts. LB is the largest; *gap to LB* = max pack load / LB - 1.
LB can be loose when many replicas of hot experts are near-equal; for small layers the Compare page
can prove the true optimum with CP-SAT (when OR-Tools is installed).
"""
)
st.subheader("Presets")
st.dataframe([{"preset": p.name, "what it does": p.description, "restarts": p.config.num_restarts,
               "refined": p.config.num_refined, "1-swap": p.config.one_swap, "2-swap": p.config.two_swap,
               "scope": p.config.swap_scope} for p in PRESETS.values()], hide_index=True, width="stretch")
