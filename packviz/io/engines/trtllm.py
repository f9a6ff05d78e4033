"""TensorRT-LLM's EP load-balancer YAML, both ways.

What TensorRT-LLM writes and reads (``examples/wide_ep/ep_load_balancer/generate_eplb_config.py`` and
``MoeLoadBalancerConfig`` in ``tensorrt_llm/_torch/model_config.py``): a mapping with ``num_slots`` (slots
per MoE layer, over all ranks), ``layer_updates_per_iter`` (0: the placement stays as given) and
``initial_global_assignments``, the model's MoE layer number -> the expert of every slot, rank by rank
(``num_slots`` entries, ``num_slots / ep_size`` per rank). Dense layers have no key. Its example dumps the
lists in flow style with sorted keys; any YAML that loads to the same mapping is the same file here.
"""

from __future__ import annotations

import yaml

from packviz.io.engines.base import EnginePlacement, PlanFileError, consecutive_ids, int_rows

NAME = "trtllm"
SUFFIX = ".yaml"
TITLE = "TensorRT-LLM EP load-balancer YAML (initial_global_assignments)"


def trtllm_yaml(phy2log, first_layer: int = 0, layer_updates_per_iter: int = 0) -> str:
    """TensorRT-LLM's EP load-balancer config: every layer's expert per slot,
    GPU (rank) by GPU, numbered from ``first_layer`` (the model's first MoE layer).

    phy2log: [moe_layers, num_replicas].
    """
    return _yaml(phy2log, consecutive_ids(first_layer, phy2log.shape[0]), layer_updates_per_iter)


def _yaml(phy2log, layer_ids, layer_updates_per_iter: int) -> str:
    # written by hand in the example's own layout (flow lists, sorted keys); read back with a YAML library
    lines = ["initial_global_assignments:"]
    for layer, row in sorted(zip(layer_ids, phy2log.cpu().tolist())):
        lines.append(f"  {layer}: [{', '.join(map(str, row))}]")
    lines.append(f"layer_updates_per_iter: {int(layer_updates_per_iter)}")
    lines.append(f"num_slots: {phy2log.shape[1]}")
    return "\n".join(lines) + "\n"


def load_yaml(text: str, name: str) -> object:
    """The document's content, read by PyYAML's safe loader (plain data only), or one sentence why not."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise PlanFileError(f"{name}: not valid YAML: {where}{error.problem}") from None
    except yaml.YAMLError as error:
        raise PlanFileError(f"{name}: not valid YAML ({error})") from None


def read_trtllm_yaml(text: str, name: str = "TensorRT-LLM YAML") -> tuple:
    """phy2log [layers, num_slots] (layers in order of their numbers) and the first layer's number,
    from any YAML holding TensorRT-LLM's ``initial_global_assignments`` (flow or block lists)."""
    placement = read_text(text, name)
    return placement.phy2log, placement.first_layer


def read_text(text: str, name: str) -> EnginePlacement:
    content = load_yaml(text, name)
    if not isinstance(content, dict) or "initial_global_assignments" not in content:
        keys = ", ".join(map(str, list(content)[:10])) if isinstance(content, dict) else type(content).__name__
        raise PlanFileError(f"{name}: no initial_global_assignments (found {keys or 'nothing'})")
    assignments = content["initial_global_assignments"]
    if not isinstance(assignments, dict) or not assignments:
        raise PlanFileError(f"{name}: initial_global_assignments must map each MoE layer's number to its "
                            "slots' experts")
    for key in assignments:
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise PlanFileError(f"{name}: initial_global_assignments: {key!r} is not a layer number")
    layers = sorted(assignments)
    phy2log = int_rows([assignments[layer] for layer in layers], f"{name}: initial_global_assignments", "layer")
    width = phy2log.shape[1]
    slots = content.get("num_slots")
    if slots is not None and slots != width:
        raise PlanFileError(f"{name}: num_slots is {slots} but every layer lists {width} slots")
    updates = content.get("layer_updates_per_iter", 0)
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise PlanFileError(f"{name}: layer_updates_per_iter must be a whole number of at least 0, not {updates!r}")
    return EnginePlacement(phy2log, tuple(layers))


def read(data: bytes, name: str) -> EnginePlacement:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlanFileError(f"{name}: not UTF-8 text") from None
    return read_text(text, name)


def write(placement: EnginePlacement, name: str = "TensorRT-LLM YAML", layer_updates_per_iter: int = 0) -> str:
    return _yaml(placement.phy2log, placement.layer_ids, layer_updates_per_iter)
