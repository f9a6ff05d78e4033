"""An exact reference for small layers: OR-Tools CP-SAT (an optional dependency).

``solve_optimal`` proves, within a time limit, the smallest possible max pack
load of each layer, so results can be judged against the true optimum and
not only against the lower bound. Install ``ortools`` to use it; without it
``available()`` is False and the app hides the feature.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from packviz.metrics import lower_bound
from packviz.validate import as_weight_matrix, check_num_packs

# CP-SAT takes integers: real loads are scaled so the largest becomes this.
_INTEGER_SCALE = 1_000_000


def available() -> bool:
    try:
        import ortools.sat.python.cp_model  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class OptimalLayer:
    """status: ``optimal`` (proved), ``feasible`` (best found, not proved) or ``unknown``.
    max_load: the best placement's max pack load (true units); bound: the
    proved lower bound on it; pack_index: [n] or None."""

    layer: int
    status: str
    max_load: float
    bound: float
    pack_index: torch.Tensor | None
    seconds: float
    scaled: bool


def solve_optimal(
    weight: torch.Tensor,
    num_packs: int,
    time_limit_s: float = 10.0,
    hint: torch.Tensor | None = None,
    workers: int = 2,
) -> list[OptimalLayer]:
    """Solve each layer of ``weight`` [L, n] exactly (within ``time_limit_s``
    per layer). ``hint`` [L, n] is a placement to start from (a packer's)."""
    if not available():
        raise RuntimeError("the optimal solver needs OR-Tools: pip install ortools")
    from ortools.sat.python import cp_model

    matrix = as_weight_matrix(weight)
    num_layers, num_items = matrix.shape
    check_num_packs(num_items, num_packs)
    per_pack = num_items // num_packs
    bounds = lower_bound(matrix, num_packs)
    results = []
    for layer in range(num_layers):
        loads = matrix[layer].tolist()
        whole = all(float(v).is_integer() for v in loads) and max(loads) < 2**40
        scale = 1.0 if whole else _INTEGER_SCALE / max(max(loads), 1e-300)
        integer_loads = [round(v * scale) for v in loads]
        model = cp_model.CpModel()
        place = [[model.NewBoolVar(f"x{i}_{p}") for p in range(num_packs)] for i in range(num_items)]
        for i in range(num_items):
            model.AddExactlyOne(place[i])
        heaviest_total = sum(sorted(integer_loads, reverse=True)[:per_pack])
        top = model.NewIntVar(0, heaviest_total, "max_load")
        for p in range(num_packs):
            model.Add(sum(place[i][p] for i in range(num_items)) == per_pack)
            model.Add(sum(integer_loads[i] * place[i][p] for i in range(num_items)) <= top)
        # Packs are interchangeable: the heaviest item goes to pack 0.
        heaviest = max(range(num_items), key=integer_loads.__getitem__)
        model.Add(place[heaviest][0] == 1)
        model.Add(top >= math.ceil(float(bounds[layer]) * scale - 1e-6))
        if hint is not None:
            _add_hint(model, place, hint[layer].tolist(), heaviest, num_packs)
        model.Minimize(top)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = float(time_limit_s)
        solver.parameters.num_search_workers = workers
        started = time.perf_counter()
        status = solver.Solve(model)
        seconds = time.perf_counter() - started
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            packs = [next(p for p in range(num_packs) if solver.Value(place[i][p])) for i in range(num_items)]
            pack_index = torch.tensor(packs, dtype=torch.int64)
            true_max = max(
                sum(loads[i] for i in range(num_items) if packs[i] == p) for p in range(num_packs)
            )
            results.append(OptimalLayer(
                layer, "optimal" if status == cp_model.OPTIMAL else "feasible", true_max,
                max(float(bounds[layer]), solver.BestObjectiveBound() / scale if whole else float(bounds[layer])),
                pack_index, seconds, not whole,
            ))
        else:
            results.append(OptimalLayer(layer, "unknown", math.inf, float(bounds[layer]), None, seconds, not whole))
    return results


def _add_hint(model, place, packs: list[int], heaviest: int, num_packs: int) -> None:
    # Relabel the hint's packs so that the heaviest item's pack is pack 0, as the model demands.
    home = packs[heaviest]
    relabel = {home: 0, 0: home}
    for i, row in enumerate(place):
        target = relabel.get(packs[i], packs[i])
        for p in range(num_packs):
            model.AddHint(row[p], 1 if p == target else 0)
