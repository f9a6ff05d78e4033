"""The placement CSV ``layer,node,gpu,slot,expert,replica,load``, both ways.

One row per physical slot, layer by layer, slot by slot: ``gpu`` is the global GPU index (the EP rank),
``slot`` the slot's index on that GPU, ``replica`` which copy of its expert the slot holds (counted in slot
order), ``load`` the expert's load over its replicas (empty when the plan came without loads). It carries
the cluster's nodes and GPUs; ``layer`` counts the MoE layers from 0.
"""

from __future__ import annotations

import csv
import io

import torch

from packviz.eplb.cluster import Cluster, slot_loads
from packviz.eplb.moves import replica_rank
from packviz.io.engines.base import EnginePlacement, PlanFileError

NAME = "csv"
SUFFIX = ".csv"
TITLE = "placement CSV (layer,node,gpu,slot,expert,replica,load)"
DEPLOY_COLUMNS = ("layer", "node", "gpu", "slot", "expert", "replica", "load")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def table_csv(rows, header) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def placement_csv(phy2log: torch.Tensor, weight: torch.Tensor | None, cluster: Cluster) -> str:
    """One row per physical slot of phy2log [layers, num_replicas]; ``load`` is the expert's load in
    ``weight`` [layers, num_logical] over its replicas (an empty cell when ``weight`` is None)."""
    phy2log = phy2log.cpu()
    loads = slot_loads(weight, phy2log).tolist() if weight is not None else None
    ranks = replica_rank(phy2log).tolist()
    experts = phy2log.tolist()
    per_gpu, per_node = cluster.slots_per_gpu, cluster.gpus_per_node
    rows = []
    for layer, (row, rank) in enumerate(zip(experts, ranks)):
        for phys, expert in enumerate(row):
            gpu = phys // per_gpu
            load = _number(loads[layer][phys]) if loads is not None else ""
            rows.append((layer, gpu // per_node, gpu, phys % per_gpu, expert, rank[phys], load))
    return table_csv(rows, DEPLOY_COLUMNS)


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
    if gpus % nodes:
        raise PlanFileError(f"{name}: {gpus} GPUs do not split evenly over {nodes} nodes")
    for gpu, node in node_of.items():
        if node != gpu // (gpus // nodes):
            raise PlanFileError(f"{name}: GPU {gpu} is on node {node}, but with {gpus // nodes} GPUs a node it "
                                f"belongs on node {gpu // (gpus // nodes)}")
    phy2log = torch.empty(layers, gpus * per_gpu, dtype=torch.int64)
    for (layer, gpu, slot), expert in cells.items():
        phy2log[layer, gpu * per_gpu + slot] = expert
    return phy2log, Cluster(gpus * per_gpu, None, nodes, gpus)


def read(data: bytes, name: str) -> EnginePlacement:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlanFileError(f"{name}: not UTF-8 text") from None
    phy2log, cluster = read_placement_csv(text, name)
    return EnginePlacement(phy2log, num_gpus=cluster.num_gpus, num_nodes=cluster.num_nodes)


def write(placement: EnginePlacement, name: str = "placement CSV", weight: torch.Tensor | None = None) -> str:
    """The CSV of a placement with its GPUs and nodes (one node when it names none); loads left empty
    unless ``weight`` [moe_layers, num_logical] is given."""
    if placement.num_gpus is None:
        raise PlanFileError(f"{name}: the placement CSV names each slot's GPU and node: say how many GPUs (--gpus)")
    nodes = placement.num_nodes or 1
    cluster = Cluster(placement.num_replicas, None, nodes, placement.num_gpus, "global")
    problem = cluster.problem(1)
    if problem:
        raise PlanFileError(f"{name}: {problem[0].lower()}{problem[1:]}")
    return placement_csv(placement.phy2log, weight, cluster)
