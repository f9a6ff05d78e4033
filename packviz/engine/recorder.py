"""Records the events of a few layers while the engine runs.

It only copies what the engine computed; the per-step work is a handful of
small indexing operations on the traced rows. At the end it applies every
recorded move to a :class:`PackState` per candidate and checks the result
against the engine's own slot table after every iteration: a trace that
disagrees with the run raises instead of being shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import torch

from packviz.config import PackerConfig, restart_rule
from packviz.trace.events import (
    STOP_REFINEMENT_OFF,
    Chosen,
    FillStarted,
    Placed,
    Pruned,
    RefinementStopped,
    Swapped,
)
from packviz.trace.replay import CandidateTrace, LayerTrace
from packviz.trace.state import PackState


class MoveBatch(Protocol):
    """The engine's moves of one iteration (``engine._Moves``)."""

    row: torch.Tensor
    is_two_swap: torch.Tensor
    pack_a: torch.Tensor
    pack_b: torch.Tensor
    slots_a: torch.Tensor
    slots_b: torch.Tensor

    def select(self, mask: torch.Tensor) -> MoveBatch: ...


class TraceRecorder:
    def __init__(
        self,
        weight: torch.Tensor,
        num_packs: int,
        config: PackerConfig,
        layer_ids: list[int],
        layers: Sequence[int],
        noise_scales: list[float],
    ) -> None:
        self.weight = weight
        self.num_packs = num_packs
        self.config = config
        self.layers = list(layers)
        self.restarts = config.num_restarts
        self.noise_scales = noise_scales
        device = weight.device
        self.traced_rows = torch.cat([
            layer * self.restarts + torch.arange(self.restarts, device=device) for layer in self.layers
        ])
        self.all_rows = len(self.layers) == weight.shape[0]
        self.traces = {
            layer: LayerTrace(layer=layer_ids[layer], weight=weight[layer].tolist(), num_packs=num_packs,
                              config=config)
            for layer in self.layers
        }
        self.step_packs: list[torch.Tensor] = []
        self.orders: dict[int, torch.Tensor] = {}
        self.swap_log: list[tuple[int, MoveBatch, torch.Tensor, torch.Tensor]] = []
        self.stops: dict[int, RefinementStopped] = {}
        self.candidate_traces: dict[int, CandidateTrace] = {}
        self.kept_count = 1
        self.content_ids: torch.Tensor | None = None
        self.pending: MoveBatch | None = None
        self.traced_candidate: torch.Tensor | None = None

    # Greedy fill ---------------------------------------------------------------
    def remember_orders(self, order: torch.Tensor) -> None:
        restarts = self.restarts
        self.orders = {layer: order[layer * restarts:(layer + 1) * restarts].cpu() for layer in self.layers}

    def on_place(self, step: int, chosen: torch.Tensor) -> None:
        self.step_packs.append(chosen if self.all_rows else chosen[self.traced_rows])

    # Pruning ---------------------------------------------------------------------
    def on_pruned(self, kept: torch.Tensor, content_ids: torch.Tensor) -> None:
        """``kept`` [L, K]: the restarts each layer keeps, best first;
        ``content_ids``: the engine's slot tables of the kept candidates."""
        self.content_ids = content_ids
        self.kept_count = kept.shape[1]
        step_packs = torch.stack(self.step_packs, dim=1).cpu()
        for position, layer in enumerate(self.layers):
            trace = self.traces[layer]
            weight = self.weight[layer].cpu()
            orders = self.orders[layer]
            packs_all = step_packs[position * self.restarts:(position + 1) * self.restarts].long()
            loads_all = torch.zeros(self.restarts, self.num_packs, dtype=torch.float64)
            loads_all.scatter_add_(1, packs_all, weight[orders])
            kept_restarts = tuple(kept[layer].tolist())
            trace.pruned = Pruned(tuple((loads_all.amax(1) - loads_all.amin(1)).tolist()), kept_restarts,
                                  self.config.select_by)
            for slot, restart in enumerate(kept_restarts):
                candidate = self._candidate_from_fill(trace.weight, orders[restart].tolist(),
                                                      packs_all[restart].tolist(), restart)
                trace.candidates.append(candidate)
                self.candidate_traces[layer * self.kept_count + slot] = candidate
        self.traced_candidate = torch.zeros(kept.numel(), dtype=torch.bool, device=kept.device)
        self.traced_candidate[list(self.candidate_traces)] = True

    def _candidate_from_fill(self, weight: list[float], order: list[int], packs: list[int],
                             restart: int) -> CandidateTrace:
        scale = self.noise_scales[restart]
        candidate = CandidateTrace(restart=restart, noise_scale=scale)
        candidate.events.append(FillStarted(restart, scale, tuple(order), restart_rule(self.config, restart)))
        loads = [0.0] * self.num_packs
        counts = [0] * self.num_packs
        for step, (item, pack) in enumerate(zip(order, packs)):
            loads[pack] += weight[item]
            candidate.events.append(Placed(step, item, weight[item], pack, counts[pack], loads[pack]))
            counts[pack] += 1
        return candidate

    def on_identity(self) -> None:
        """One item per pack: item i is pack i, no restarts, nothing to refine."""
        for layer in self.layers:
            trace = self.traces[layer]
            items = list(range(self.num_packs))
            trace.candidates = [self._candidate_from_fill(trace.weight, items, items, 0)]
            trace.candidates[0].events.append(RefinementStopped(0, STOP_REFINEMENT_OFF))
            trace.pruned = Pruned((max(trace.weight) - min(trace.weight),), (0,), self.config.select_by)
            trace.choice = Chosen(0, 0, 1, self.config.select_by, max(trace.weight),
                                  max(trace.weight) - min(trace.weight))

    # Refinement ----------------------------------------------------------------
    def before_swap(self, moves: MoveBatch) -> None:
        traced = self.traced_candidate[moves.row]
        self.pending = moves.select(traced) if bool(traced.any()) else None

    def after_swap(self, iteration: int) -> None:
        picked = self.pending
        if picked is None:
            return
        rows = torch.unique(picked.row)
        self.swap_log.append((iteration, picked, rows, self.content_ids[rows].clone()))

    def on_stopped(self, rows: torch.Tensor, reason: str, iterations: int) -> None:
        """Candidates ``rows`` stop refining after ``iterations`` iterations."""
        for row in rows.tolist():
            if row in self.candidate_traces:
                self.stops[row] = RefinementStopped(iterations, reason)

    def _flush_swaps(self) -> None:
        """Turn the logged moves into Swapped events, applying them in order to
        each candidate's state; after every iteration that state must equal the
        engine's own slot table, or the trace is wrong."""
        states = {}
        for row, candidate in self.candidate_traces.items():
            state = PackState(self.traces[row // self.kept_count].weight, self.num_packs)
            for event in candidate.events:
                state.apply(event)
            states[row] = state
        for iteration, moves, rows, ids_after in self.swap_log:
            for position, row in enumerate(moves.row.tolist()):
                state = states[row]
                pack_a, pack_b = int(moves.pack_a[position]), int(moves.pack_b[position])
                ranks_a = tuple(int(s) for s in moves.slots_a[position].tolist() if s >= 0)
                ranks_b = tuple(int(s) for s in moves.slots_b[position].tolist() if s >= 0)
                from_a = tuple(state.slots[pack_a][r] for r in ranks_a)
                from_b = tuple(state.slots[pack_b][r] for r in ranks_b)
                weight = state.weight
                spread_before = state.spread
                difference = state.loads[pack_a] - state.loads[pack_b]
                after = state.copy()
                event = Swapped(
                    iteration=iteration,
                    move_kind="2-swap" if bool(moves.is_two_swap[position]) else "1-swap",
                    pack_a=pack_a, pack_b=pack_b, items_from_a=from_a, items_from_b=from_b,
                    ranks_in_a=ranks_a, ranks_in_b=ranks_b, difference_before=difference,
                    moved_load=sum(weight[i] for i in from_a) - sum(weight[i] for i in from_b),
                    spread_before=spread_before, spread_after=0.0,
                )
                after.apply(event)
                event = _with_spread_after(event, after.spread)
                state.apply(event)
                self.candidate_traces[row].events.append(event)
            for position, row in enumerate(rows.tolist()):
                if [list(r) for r in states[row].slots] != ids_after[position].tolist():
                    raise RuntimeError(f"trace of candidate {row} diverged from the engine at move {iteration}")

    def on_chosen(self, best: torch.Tensor) -> None:
        self._flush_swaps()
        for row, candidate in self.candidate_traces.items():
            candidate.events.append(self.stops.get(row, RefinementStopped(0, STOP_REFINEMENT_OFF)))
        for layer in self.layers:
            trace = self.traces[layer]
            index = int(best[layer])
            state = PackState(trace.weight, self.num_packs)
            for event in trace.candidates[index].events:
                state.apply(event)
            trace.choice = Chosen(index, trace.candidates[index].restart, len(trace.candidates),
                                  self.config.select_by, state.max_load, state.spread)

    def finish(self) -> dict[int, LayerTrace]:
        return self.traces


def _with_spread_after(event: Swapped, spread_after: float) -> Swapped:
    return dataclasses.replace(event, spread_after=spread_after)
