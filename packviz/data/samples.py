"""The shipped samples and what a loaded data set is, independent of the UI.

A :class:`Dataset` is the matrix the packer sees (one column per physical
slot) plus the :class:`SlotMap` that says which expert each slot serves, so
every view and export can name experts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from packviz.data.experts import SlotMap, replicate
from packviz.data.loaders import LoadedMatrix, read_loads
from packviz.data.traces import LoadSeries, read_trace
from packviz.validate import valid_pack_counts


def _sample_dir() -> Path:
    """The wheel ships the samples inside the package (``packviz/sample_data``);
    a checkout keeps them at the repository root."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "sample_data"
    return installed if installed.is_dir() else package.parent / "sample_data"


SAMPLE_DIR = _sample_dir()


@dataclass(frozen=True)
class Sample:
    file_name: str
    default_packs: int
    slots: int | None  # slots after EPLB's replication of hot experts, or None for none


SAMPLES: dict[str, Sample] = {
    "DeepSeek-V3: 256 experts + 32 replicas (58 x 288)": Sample("deepseek_v3_58x256.csv", 32, 288),
    "DeepSeek-V3 experts, no replicas (58 x 256)": Sample("deepseek_v3_58x256.csv", 32, None),
    "DeepSeek EPLB README example (2 x 12)": Sample("deepseek_readme.csv", 4, None),
    "Teaching: 12 items, 2-swap beats 1-swap": Sample("teaching_12_items.csv", 3, None),
    "SGLang expert-distribution dump (8 x 64)": Sample("sglang_dump.pt", 8, None),
}
DEFAULT_SAMPLE = next(iter(SAMPLES))

# Traces with a time axis, read by packviz.data.traces.read_trace: label -> file in sample_data/
TRACE_SAMPLES: dict[str, str] = {
    "DeepSeek-V2-Lite prefill, 48 windows of 40 prompts (synthetic, matches a real trace)":
        "deepseek_v2_lite_prefill_trace.pt",
}
DEFAULT_TRACE_SAMPLE = next(iter(TRACE_SAMPLES))


@dataclass(frozen=True)
class Dataset:
    """weight [L, n] float64 per slot; slots maps each slot to its expert;
    experts [L, E] the loads per logical expert as loaded (before any
    replication); steps [S, L, E] the loads step by step where the data has a
    time axis (an SGLang dump, the drifting generator), else None."""

    weight: torch.Tensor
    description: str
    source: str
    digest: str
    default_packs: int
    slots: SlotMap
    experts: torch.Tensor | None = None
    steps: torch.Tensor | None = None

    @property
    def item_names(self) -> tuple[str, ...] | None:
        """Column names of the loaded data where each item is one named expert."""
        if self.slots.expert_names is None or self.slots.replicated:
            return None
        return self.slots.expert_names


def make_dataset(loaded: LoadedMatrix, default_packs: int | None = None,
                 replicate_into: int | None = None) -> Dataset:
    """The packer's view of ``loaded`` (one column per expert), its hottest
    experts replicated into ``replicate_into`` slots when that is given.
    Raises ValueError when the slots cannot hold the experts."""
    layers, experts = loaded.shape
    description = loaded.description
    if replicate_into and replicate_into != experts:
        weight, slots = replicate(loaded.weight, replicate_into, loaded.item_names)
        description += (f"; the hottest experts replicated into {replicate_into} slots (EPLB's replication: "
                        "each slot carries its expert's load / replicas)")
    else:
        weight, slots = loaded.weight, SlotMap.identity(layers, experts, loaded.item_names)
    steps = loaded.time_axis
    digest = hashlib.sha256(weight.numpy().tobytes() + str(tuple(weight.shape)).encode()
                            + repr(slots.expert_names).encode()
                            + (steps.numpy().tobytes() if steps is not None else b"")).hexdigest()[:16]
    packs = default_packs if default_packs and weight.shape[1] % default_packs == 0 else \
        default_pack_count(weight.shape[1])
    return Dataset(weight, description, loaded.source, digest, packs, slots, loaded.weight, steps)


def read_sample(label: str) -> LoadedMatrix:
    return read_loads(SAMPLE_DIR / SAMPLES[label].file_name, keep_time_axis=True)


def read_trace_sample(label: str = DEFAULT_TRACE_SAMPLE) -> list[LoadSeries]:
    """The shipped trace ``label`` as load series (one: its windows are [windows, layers, experts])."""
    return read_trace(SAMPLE_DIR / TRACE_SAMPLES[label])


def load_sample(label: str) -> Dataset:
    sample = SAMPLES[label]
    return make_dataset(read_sample(label), sample.default_packs, sample.slots)


def default_pack_count(num_items: int) -> int:
    """A pack count like a real deployment's: the largest power of two up to 64
    GPUs that divides the items and leaves each at least 4; else the largest
    such divisor up to 64; else the largest divisor below the item count."""
    counts = [m for m in valid_pack_counts(num_items) if m < num_items] or [1]
    roomy = [m for m in counts if m <= 64 and num_items // m >= 4]
    powers = [m for m in roomy if m & (m - 1) == 0]
    return max(powers or roomy or counts)
