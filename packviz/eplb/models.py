"""MoE models a placement is made for: their shape, expert groups and the bytes of one expert.

One routed expert is a gated MLP of three matrices (gate and up projections,
hidden x moe_intermediate, and the down projection back), so its weights are
``3 x hidden_size x moe_intermediate_size x bytes per weight``, from each
model's published ``config.json`` (the weights' own scale tensors left out):

- DeepSeek-V3 / R1: hidden 7168, moe_intermediate 2048, FP8 (1 byte):
  3 x 7168 x 2048 x 1 = 44,040,192 bytes; 61 layers, the first 3 dense
  (``first_k_dense_replace``), 58 MoE layers x 256 experts, 8 groups (``n_group``).
- Kimi K2: hidden 7168, moe_intermediate 2048, FP8: 44,040,192 bytes; 61
  layers, the first dense, 60 MoE layers x 384 experts, one group.
- Qwen3-30B-A3B: hidden 2048, moe_intermediate 768, BF16 (2 bytes):
  3 x 2048 x 768 x 2 = 9,437,184 bytes; 48 MoE layers x 128 experts, no groups.
- Qwen3-235B-A22B: hidden 4096, moe_intermediate 1536, BF16:
  3 x 4096 x 1536 x 2 = 37,748,736 bytes; 94 MoE layers x 128 experts, no groups.
- Llama-4 Maverick (17B-128E): hidden 5120, expert intermediate 8192, BF16:
  3 x 5120 x 8192 x 2 = 251,658,240 bytes; 48 layers, every second one MoE
  (``interleave_moe_layer_step`` 2): 24 MoE layers x 128 experts, no groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from packviz.eplb.cluster import moe_layers


@dataclass(frozen=True)
class ModelPreset:
    """One model's MoE shape; ``num_groups`` None where the router has no expert groups."""

    name: str
    moe_layers: int
    experts: int
    num_groups: int | None
    hidden_size: int
    moe_intermediate_size: int
    bytes_per_weight: int  # 1: FP8, 2: BF16

    @property
    def expert_bytes(self) -> int:
        """One routed expert's weights: gate, up and down projections."""
        return 3 * self.hidden_size * self.moe_intermediate_size * self.bytes_per_weight

    @property
    def label(self) -> str:
        return f"{self.name} ({self.shape_words}, {self.expert_bytes / 1e6:,.1f} MB)"

    @property
    def shape_words(self) -> str:
        dtype = {1: "FP8", 2: "BF16"}.get(self.bytes_per_weight, f"{self.bytes_per_weight} B")
        return f"{self.moe_layers} MoE layers x {self.experts} experts, {dtype}"


MODELS: dict[str, ModelPreset] = {model.name: model for model in (
    ModelPreset("DeepSeek-V3/R1", 58, 256, 8, 7168, 2048, 1),
    ModelPreset("Kimi K2", 60, 384, None, 7168, 2048, 1),
    ModelPreset("Qwen3-30B-A3B", 48, 128, None, 2048, 768, 2),
    ModelPreset("Qwen3-235B-A22B", 94, 128, None, 4096, 1536, 2),
    ModelPreset("Llama-4 Maverick", 24, 128, None, 5120, 8192, 2),
)}
DEFAULT_MODEL = "DeepSeek-V3/R1"


def model_for(weight: torch.Tensor) -> ModelPreset | None:
    """The model whose MoE layer count and expert count are this data's
    (weight [layers, num_logical] or [steps, layers, num_logical]; dense, all-zero
    layers not counted), else None: a guess from the shape, never from the names."""
    moe_count, experts = int(moe_layers(weight).sum()), int(weight.shape[-1])
    return next((m for m in MODELS.values() if (m.moe_layers, m.experts) == (moe_count, experts)), None)
