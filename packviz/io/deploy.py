"""A whole EPLB plan written for people and serving engines, and read back.

Writers and readers come in pairs, and reading any export gives back the map
that was written (tests/test_deploy_io.py):

- placement CSV ``layer,node,gpu,slot,expert,replica,load``: ``gpu`` is the
  global GPU index (the EP rank), ``slot`` the slot's index on that GPU;
- SGLang's ``--init-expert-location`` JSON, ``physical_to_logical_map``
  [layers, num_replicas], or the ``logical_count`` form [layers, num_logical]
  (SGLang then runs EPLB on it at start-up);
- TensorRT-LLM's EP load-balancer YAML (``examples/ep_load_balancer``):
  ``initial_global_assignments`` (per layer, the expert of every slot, rank
  by rank), ``layer_updates_per_iter`` and ``num_slots``, lists in flow style;
- the moves between two plans, ``layer,expert,replica,from_node,from_gpu,
  from_slot,to_node,to_gpu,to_slot,bytes``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import torch

from packviz.eplb.cluster import Cluster, slot_loads
from packviz.eplb.moves import MOVE_COLUMNS, Moves, replica_rank

DEPLOY_COLUMNS = ("layer", "node", "gpu", "slot", "expert", "replica", "load")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class PlanFileError(ValueError):
    """A plan file that cannot be read back; the message says what and where."""


def _csv(rows, header) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def placement_csv(phy2log: torch.Tensor, weight: torch.Tensor, cluster: Cluster) -> str:
    """One row per physical slot, layer by layer, slot by slot; ``load`` is the
    expert's load in ``weight`` [layers, num_logical] over its replicas."""
    phy2log = phy2log.cpu()
    loads = slot_loads(weight, phy2log).tolist()
    ranks = replica_rank(phy2log).tolist()
    experts = phy2log.tolist()
    per_gpu, per_node = cluster.slots_per_gpu, cluster.gpus_per_node
    rows = []
    for layer, (row, rank, load) in enumerate(zip(experts, ranks, loads)):
        for phys, expert in enumerate(row):
            gpu = phys // per_gpu
            rows.append((layer, gpu // per_node, gpu, phys % per_gpu, expert, rank[phys], _number(load[phys])))
    return _csv(rows, DEPLOY_COLUMNS)


def read_placement_csv(text: str, name: str = "placement CSV") -> tuple[torch.Tensor, Cluster]:
    """phy2log [layers, num_replicas] and the cluster shape (groups unknown: None) from a placement CSV."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header[:len(DEPLOY_COLUMNS)]) != DEPLOY_COLUMNS:
        raise PlanFileError(f"{name}: expected the columns {','.join(DEPLOY_COLUMNS)}")
    cells: dict[tuple[int, int, int], int] = {}
    node_of: dict[int, int] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            layer, node, gpu, slot, expert = (int(v) for v in row[:5])
        except ValueError:
            raise PlanFileError(f"{name}: line {line}: layer, node, gpu, slot and expert must be whole numbers, "
                                f"got {row[:5]}") from None
        if min(layer, node, gpu, slot, expert) < 0:
            raise PlanFileError(f"{name}: line {line}: negative index in {row[:5]}")
        if node_of.setdefault(gpu, node) != node:
            raise PlanFileError(f"{name}: line {line}: GPU {gpu} is on node {node} here and on node "
                                f"{node_of[gpu]} above")
        if (layer, gpu, slot) in cells:
            raise PlanFileError(f"{name}: line {line}: layer {layer}, GPU {gpu}, slot {slot} appears twice")
        cells[(layer, gpu, slot)] = expert
    if not cells:
        raise PlanFileError(f"{name}: no rows")
    layers = 1 + max(k[0] for k in cells)
    gpus = 1 + max(node_of)
    per_gpu = 1 + max(k[2] for k in cells)
    nodes = 1 + max(node_of.values())
    if len(cells) != layers * gpus * per_gpu:
        raise PlanFileError(f"{name}: {len(cells)} rows, but {layers} layers x {gpus} GPUs x {per_gpu} slots "
                            f"need {layers * gpus * per_gpu}: some slots are missing")
    phy2log = torch.empty(layers, gpus * per_gpu, dtype=torch.int64)
    for (layer, gpu, slot), expert in cells.items():
        phy2log[layer, gpu * per_gpu + slot] = expert
    return phy2log, Cluster(gpus * per_gpu, None, nodes, gpus)


def sglang_json(phy2log: torch.Tensor) -> str:
    """SGLang's ``--init-expert-location`` file holding the plan itself."""
    return json.dumps({"physical_to_logical_map": phy2log.cpu().tolist()})


def sglang_logical_count_json(weight: torch.Tensor) -> str:
    """SGLang's ``--init-expert-location`` file holding the loads [layers, num_logical]
    (or [steps, layers, num_logical]); SGLang runs EPLB on them at start-up."""
    weight = weight.cpu().to(torch.float64)
    values = weight.to(torch.int64).tolist() if bool((weight == weight.round()).all()) else weight.tolist()
    return json.dumps({"logical_count": values})


def read_sglang_json(text: str, name: str = "SGLang JSON") -> dict[str, torch.Tensor]:
    """``{"physical_to_logical_map": [layers, slots] int64}`` or ``{"logical_count": float64 loads}``."""
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise PlanFileError(f"{name}: not valid JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(content, dict):
        raise PlanFileError(f"{name}: expected an object with physical_to_logical_map or logical_count")
    if "physical_to_logical_map" in content:
        table = _int_table(content["physical_to_logical_map"], f"{name}: physical_to_logical_map")
        return {"physical_to_logical_map": table}
    if "logical_count" in content:
        try:
            values = torch.tensor(content["logical_count"], dtype=torch.float64)
        except (TypeError, ValueError):
            raise PlanFileError(f"{name}: logical_count is not a rectangular array of numbers") from None
        if values.dim() not in (2, 3):
            raise PlanFileError(f"{name}: logical_count has {values.dim()} dimensions; expected 2 or 3")
        return {"logical_count": values}
    raise PlanFileError(f"{name}: holds neither physical_to_logical_map nor logical_count; its keys: "
                        f"{', '.join(map(str, list(content)[:10]))}")


def _int_table(rows: object, where: str) -> torch.Tensor:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise PlanFileError(f"{where}: expected a list of rows of expert ids")
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width:
            raise PlanFileError(f"{where}: layer {index} has {len(row)} slots, layer 0 has {width}")
        for slot, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PlanFileError(f"{where}: layer {index}, slot {slot}: {value!r} is not an expert id")
    return torch.tensor(rows, dtype=torch.int64)


def trtllm_yaml(phy2log: torch.Tensor, first_layer: int = 0, layer_updates_per_iter: int = 0) -> str:
    """TensorRT-LLM's EP load-balancer config: every layer's expert per slot,
    GPU (rank) by GPU, numbered from ``first_layer`` (the model's first MoE layer)."""
    lines = ["initial_global_assignments:"]
    for index, row in enumerate(phy2log.cpu().tolist()):
        lines.append(f"  {first_layer + index}: [{', '.join(map(str, row))}]")
    lines.append(f"layer_updates_per_iter: {int(layer_updates_per_iter)}")
    lines.append(f"num_slots: {phy2log.shape[1]}")
    return "\n".join(lines) + "\n"


_YAML_ENTRY = re.compile(r"^\s+(\d+)\s*:\s*\[([\d,\s]*)\]\s*$")
_YAML_SCALAR = re.compile(r"^(\w+)\s*:\s*(\S*)\s*$")


def read_trtllm_yaml(text: str, name: str = "TensorRT-LLM YAML") -> tuple[torch.Tensor, int]:
    """phy2log [layers, num_slots] (layers in the file's order) and the first layer's number,
    from the flow-style YAML that TensorRT-LLM's example and :func:`trtllm_yaml` write."""
    assignments: dict[int, list[int]] = {}
    scalars: dict[str, str] = {}
    in_assignments = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = _YAML_ENTRY.match(line)
        if in_assignments and entry:
            values = [v.strip() for v in entry.group(2).split(",") if v.strip()]
            assignments[int(entry.group(1))] = [int(v) for v in values]
            continue
        scalar = _YAML_SCALAR.match(line)
        if not scalar:
            raise PlanFileError(f"{name}: line {number}: cannot read {line.strip()[:60]!r}")
        in_assignments = scalar.group(1) == "initial_global_assignments"
        scalars[scalar.group(1)] = scalar.group(2)
    if not assignments:
        raise PlanFileError(f"{name}: no initial_global_assignments")
    layers = sorted(assignments)
    widths = {len(assignments[layer]) for layer in layers}
    if len(widths) != 1:
        raise PlanFileError(f"{name}: the layers have different slot counts: {sorted(widths)}")
    width = widths.pop()
    if "num_slots" in scalars and scalars["num_slots"] != str(width):
        raise PlanFileError(f"{name}: num_slots is {scalars['num_slots']} but every layer lists {width} slots")
    return torch.tensor([assignments[layer] for layer in layers], dtype=torch.int64), layers[0]


def moves_csv(moves: Moves) -> str:
    """One row per moved replica."""
    return _csv(moves.rows(), MOVE_COLUMNS)


def read_moves_csv(text: str, num_gpus: int, name: str = "moves CSV") -> Moves:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != MOVE_COLUMNS:
        raise PlanFileError(f"{name}: expected the columns {','.join(MOVE_COLUMNS)}")
    try:
        table = torch.tensor([[int(v) for v in row] for row in rows[1:] if row], dtype=torch.int64)
    except ValueError:
        raise PlanFileError(f"{name}: every cell must be a whole number") from None
    table = table.reshape(-1, len(MOVE_COLUMNS))
    return Moves(**{column: table[:, index] for index, column in enumerate(MOVE_COLUMNS)}, num_gpus=num_gpus)


def read_plan(source: str | Path | bytes, name: str | None = None) -> torch.Tensor:
    """phy2log [layers, num_replicas] from a plan file, by its suffix: SGLang
    ``.json`` (``physical_to_logical_map``), placement ``.csv`` or TensorRT-LLM ``.yaml``."""
    if isinstance(source, (str, Path)):
        name = name or Path(source).name
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise PlanFileError(f"{name}: cannot be read ({error.strerror or error})") from None
    else:
        data, name = bytes(source), name or "plan"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlanFileError(f"{name}: not UTF-8 text") from None
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        content = read_sglang_json(text, name)
        if "physical_to_logical_map" not in content:
            raise PlanFileError(f"{name}: holds logical_count (loads), not a plan (physical_to_logical_map)")
        return content["physical_to_logical_map"]
    if suffix == ".csv":
        return read_placement_csv(text, name)[0]
    if suffix in (".yaml", ".yml"):
        return read_trtllm_yaml(text, name)[0]
    raise PlanFileError(f"{name}: unknown plan file type {suffix or '(none)'!r}; use .json (SGLang), "
                        ".csv (placement) or .yaml (TensorRT-LLM)")
