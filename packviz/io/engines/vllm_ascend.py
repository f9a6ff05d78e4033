"""vllm-ascend's expert map (``additional_config.eplb_config.expert_map_path``), both ways.

What vllm-ascend reads (``vllm_ascend/eplb/core/eplb_utils.py``, ``expert_file_to_tensor``): JSON with
``moe_layer_count`` and ``layer_list``; MoE layer i (counted over MoE layers only, by position) is
``layer_list[i]``, whose ``device_list`` gives every device's ``device_expert``, the logical expert in
each of its local slots. Every device lists the same number of slots (they become one tensor). Each
device maps an expert to one local slot (``expert_map[device_expert] = arange``), so a device holding
an expert twice loses the first copy: such a plan is refused here. Written as vllm-ascend's own recorder
(``vllm_ascend/eplb/adaptor/vllm_adaptor.py``) writes it, with ``layer_id``, ``device_count`` and
``device_id`` beside what is read.
"""

from __future__ import annotations

import json

import torch

from packviz.io.engines.base import EnginePlacement, PlanFileError, int_rows, json_content

NAME = "vllm-ascend"
SUFFIX = ".json"
TITLE = "vllm-ascend expert map JSON (expert_map_path: layer_list / device_list / device_expert)"


def idle_copies(phy2log: torch.Tensor, num_gpus: int) -> str | None:
    """A sentence on the slots vllm-ascend leaves idle (a second copy of an expert on one device), or None.

    phy2log: [moe_layers, num_replicas]. Such a plan still loads, as packviz's other checks count it: each
    of those slots is wasted.
    """
    layers, slots = phy2log.shape
    local = phy2log.reshape(layers, num_gpus, slots // num_gpus)
    ordered = local.sort(dim=2).values
    repeats = ordered[..., 1:] == ordered[..., :-1]
    if not bool(repeats.any()):
        return None
    layer, device = (int(v) for v in repeats.any(dim=2).nonzero()[0])
    row = ordered[layer, device]
    expert = int(row[1:][repeats[layer, device]][0])
    where = (local[layer, device] == expert).nonzero().flatten().tolist()
    return (f"{int(repeats.sum())} slots hold an expert already on their device (the first: layer {layer}, device "
            f"{device}, expert {expert} in slots {', '.join(map(str, where))}); vllm-ascend maps an expert to one "
            "slot per device, so each such slot sits idle")


def vllm_ascend_json(phy2log: torch.Tensor, num_gpus: int, name: str = "vllm-ascend map") -> str:
    """vllm-ascend's expert map for phy2log [moe_layers, num_replicas] over ``num_gpus`` devices.

    Raises PlanFileError where the slots do not split evenly over the devices.
    """
    layers, slots = phy2log.shape
    if num_gpus < 1 or slots % num_gpus:
        raise PlanFileError(f"{name}: {slots} slots do not split evenly over {num_gpus} devices")
    local = phy2log.cpu().reshape(layers, num_gpus, slots // num_gpus).tolist()
    # the recorder's fields, laid out one device a line (its indent=4 puts every id on a line of its own)
    blocks = []
    for layer, devices in enumerate(local):
        lines = ",\n".join(f'    {{"device_id": {device}, "device_expert": {json.dumps(experts)}}}'
                           for device, experts in enumerate(devices))
        blocks.append(f'  {{"layer_id": {layer}, "device_count": {num_gpus}, "device_list": [\n{lines}\n  ]}}')
    return f'{{"moe_layer_count": {layers}, "layer_list": [\n' + ",\n".join(blocks) + "\n]}\n"


def looks_like(content: object) -> bool:
    return isinstance(content, dict) and "layer_list" in content


def from_content(content: object, name: str) -> EnginePlacement:
    if not looks_like(content):
        raise PlanFileError(f"{name}: expected an object with moe_layer_count and layer_list")
    layer_list = content["layer_list"]
    if not isinstance(layer_list, list) or not layer_list:
        raise PlanFileError(f"{name}: layer_list must be a list with one entry per MoE layer")
    count = content.get("moe_layer_count")
    if count != len(layer_list):
        raise PlanFileError(f"{name}: moe_layer_count is {count!r} but layer_list has {len(layer_list)} layers")
    rows, devices = [], None
    for index, layer in enumerate(layer_list):
        device_list = layer.get("device_list") if isinstance(layer, dict) else None
        if not isinstance(device_list, list) or not device_list:
            raise PlanFileError(f"{name}: layer_list[{index}] has no device_list")
        if devices is None:
            devices = len(device_list)
        elif len(device_list) != devices:
            raise PlanFileError(f"{name}: layer_list[{index}] lists {len(device_list)} devices, "
                                f"layer_list[0] {devices}")
        local = []
        for slot, device in enumerate(device_list):
            experts = device.get("device_expert") if isinstance(device, dict) else None
            if not isinstance(experts, list):
                raise PlanFileError(f"{name}: layer_list[{index}].device_list[{slot}] has no device_expert list")
            local.append(experts)
        table = int_rows(local, f"{name}: layer_list[{index}]", "device")
        rows.append(table.flatten().tolist())
    phy2log = int_rows(rows, name, "layer")
    idle = idle_copies(phy2log, devices)
    return EnginePlacement(phy2log, num_gpus=devices, notes=(idle,) if idle else ())


def read(data: bytes, name: str) -> EnginePlacement:
    return from_content(json_content(data, name), name)


def write(placement: EnginePlacement, name: str = "vllm-ascend map") -> str:
    if placement.num_gpus is None:
        raise PlanFileError(f"{name}: vllm-ascend's map lists the slots device by device: say how many devices "
                            "(--gpus)")
    return vllm_ascend_json(placement.phy2log, placement.num_gpus, name)
