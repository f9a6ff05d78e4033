"""vLLM's initial expert map (``eplb_config.initial_expert_map_path``), both ways.

vLLM's mainline takes no placement file; the open pull request vllm-project/vllm#49572 (not merged) adds
``initial_expert_map_path``: a JSON physical-to-logical layout, either one list of ``num_physical_experts``
logical ids shared by every MoE layer or one such list per MoE layer, every logical expert present. Its
layers are the MoE layers only. Written here one list per layer; a shared list is read as one row with
``shared`` set, and the layer count comes from whoever converts it.
"""

from __future__ import annotations

import json

import torch

from packviz.io.engines.base import EnginePlacement, PlanFileError, int_rows, json_content

NAME = "vllm"
SUFFIX = ".json"
TITLE = "vLLM initial expert map JSON (eplb_config.initial_expert_map_path, pull request #49572)"


def vllm_json(phy2log: torch.Tensor) -> str:
    """One list of slot -> logical expert per MoE layer; phy2log [moe_layers, num_replicas]."""
    return json.dumps(phy2log.cpu().tolist())


def looks_like(content: object) -> bool:
    return isinstance(content, list)


def from_content(content: object, name: str) -> EnginePlacement:
    if not isinstance(content, list) or not content:
        raise PlanFileError(f"{name}: expected a list of logical expert ids, or one such list per MoE layer")
    if all(isinstance(value, list) for value in content):
        return EnginePlacement(int_rows(content, name, "layer"))
    if any(isinstance(value, list) for value in content):
        raise PlanFileError(f"{name}: mixes lists and numbers; expected one list of expert ids, or one per MoE layer")
    row = int_rows([content], name, "layer")
    return EnginePlacement(row, shared=True, notes=("one map shared by every MoE layer",))


def read(data: bytes, name: str) -> EnginePlacement:
    return from_content(json_content(data, name), name)


def write(placement: EnginePlacement, name: str = "vLLM map") -> str:
    if placement.shared:
        return json.dumps(placement.phy2log[0].cpu().tolist())
    return vllm_json(placement.phy2log)
