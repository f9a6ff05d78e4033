"""``pack``: the public entry point to the engine."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from packviz.config import DEFAULT_PRESET, PackerConfig, resolve_config
from packviz.engine import driver as engine
from packviz.trace.replay import LayerTrace
from packviz.validate import as_weight_matrix, check_num_packs, check_placement


@dataclass
class PackResult:
    """A placement of every layer's items into packs.

    pack_index:   [layers, items] int64, the pack of each item
    rank_in_pack: [layers, items] int64, the item's slot within its pack (0..k-1)
    pack_loads:   [layers, packs] float64, the sum of each pack's loads
    weight:       [layers, items] float64, the loads that were packed
    """

    pack_index: torch.Tensor
    rank_in_pack: torch.Tensor
    pack_loads: torch.Tensor
    weight: torch.Tensor
    config: PackerConfig
    preset: str | None
    device: str
    elapsed_s: float
    traces: dict[int, LayerTrace] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return self.pack_index.shape[0]

    @property
    def num_items(self) -> int:
        return self.pack_index.shape[1]

    @property
    def num_packs(self) -> int:
        return self.pack_loads.shape[1]


def pack(
    weight: Any,
    num_packs: int,
    preset: str | PackerConfig = DEFAULT_PRESET,
    seed: int = 0,
    trace_layers: Sequence[int] = (),
    layer_ids: Sequence[int] | None = None,
    **options: Any,
) -> PackResult:
    """Pack each layer's n items into ``num_packs`` packs of n/num_packs items.

    weight: [layers, items] (or [items], one layer) of non-negative loads.
    preset: a preset name or a PackerConfig; ``options`` override its fields.
    trace_layers: rows whose every step is recorded in ``result.traces``.
    layer_ids: the layer number of each row (default 0..L-1); it seeds the
        row's noise, so ``pack(w[5:6], m, layer_ids=[5])`` equals row 5 of ``pack(w, m)``.
    Raises ValueError for bad loads, pack counts, presets or options.
    """
    config = resolve_config(preset, seed=seed, **options)
    matrix = as_weight_matrix(weight)
    num_layers, num_items = matrix.shape
    check_num_packs(num_items, num_packs)
    for layer in trace_layers:
        if not 0 <= layer < num_layers:
            raise ValueError(f"trace layer {layer} is out of range: there are {num_layers} layers")
    device = engine.resolve_device(config.device)
    on_device = matrix.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    if layer_ids is not None and len(layer_ids) != num_layers:
        raise ValueError(f"layer_ids has {len(layer_ids)} entries for {num_layers} layers")
    # fills, plus the 1-swap grids of the kept candidates (k x k per pack)
    per_pack = num_items // num_packs
    cells = num_layers * num_items * (config.num_restarts + min(config.num_refined, config.num_restarts) * per_pack)
    with engine.threads_for(device, cells):
        output = engine.run(on_device, num_packs, config, trace_layers, layer_ids)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    # Checked on every call, not only in tests: a placement goes onto GPUs.
    label = preset if isinstance(preset, str) else "custom config"
    check_placement(on_device, output.pack_index, output.rank_in_pack, output.pack_loads, num_packs, label,
                    list(layer_ids) if layer_ids is not None else None)
    return PackResult(
        pack_index=output.pack_index.cpu(),
        rank_in_pack=output.rank_in_pack.cpu(),
        pack_loads=output.pack_loads.cpu(),
        weight=matrix.cpu(),
        config=config,
        preset=preset if isinstance(preset, str) else None,
        device=str(device),
        elapsed_s=elapsed,
        traces=output.traces,
    )
