"""Regenerate the generated samples in sample_data/, byte for byte.

    python scripts/make_samples.py [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packviz import pack
from packviz.cli import write_matrix
from packviz.data.generators import drifting_moe, moe
from packviz.data.traffic import drifting_traffic

PREFILL_TRACE = "deepseek_v2_lite_prefill_trace.pt"
PREFILL_TRACE_WINDOWS, PREFILL_TRACE_SEED = 48, 1

DEEPSEEK_README = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                   [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]


def teaching_instance() -> list[int]:
    """The first seeded 12-item layer where, from the plain greedy fill into 3
    packs, 2-swaps reach a visibly smaller spread than 1-swaps alone."""
    generator = torch.Generator().manual_seed(2024)
    for _ in range(10_000):
        weight = torch.randint(10, 100, (1, 12), generator=generator).double()
        common = {"num_restarts": 1, "num_refined": 1, "swap_scope": "extremes"}
        one = pack(weight, 3, "restarts-2swap", two_swap=False, **common)
        two = pack(weight, 3, "restarts-2swap", **common)
        spread_one = float(one.pack_loads.amax() - one.pack_loads.amin())
        spread_two = float(two.pack_loads.amax() - two.pack_loads.amin())
        if spread_two <= 1 and spread_one >= 10:
            return [int(v) for v in weight[0].tolist()]
    raise RuntimeError("no teaching instance found")


def sglang_dump() -> bytes:
    """An SGLang expert-distribution dump (mode stat): [steps, layers, experts]."""
    counts = drifting_moe(4, 8, 64, seed=7, tokens_per_layer=2e4).to(torch.int64)
    buffer = io.BytesIO()
    torch.save({
        "rank": 0,
        "logical_count": counts,
        "average_utilization_rate_over_window": torch.tensor(0.71, dtype=torch.float64),
    }, buffer)
    return buffer.getvalue()


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def emit(name: str, weight: torch.Tensor) -> None:
        write_matrix(weight, out / name)
        written.append(out / name)

    emit("deepseek_readme.csv", torch.tensor(DEEPSEEK_README, dtype=torch.float64))
    emit("teaching_12_items.csv", torch.tensor([teaching_instance()], dtype=torch.float64))
    emit("deepseek_v3_58x256.csv", moe(58, 256, seed=3, skew=1.1, correlation=0.5, tokens_per_layer=65536 * 8))
    (out / "sglang_dump.pt").write_bytes(sglang_dump())
    written.append(out / "sglang_dump.pt")
    trace = drifting_traffic(PREFILL_TRACE_WINDOWS, phase="prefill", seed=PREFILL_TRACE_SEED)
    # a .pt, as the wheel ships the samples' .csv and .pt files
    torch.save(trace.to(torch.int32), out / PREFILL_TRACE)
    written.append(out / PREFILL_TRACE)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "sample_data"))
    args = parser.parse_args()
    for path in write_all(Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
