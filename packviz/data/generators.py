"""Seeded, deterministic load matrices [layers, items] (and [steps, layers, items]).

Every generator takes the same ``layers``, ``items``, ``seed`` and
``integer`` (whole token counts) arguments plus its own shape parameters,
and returns a float64 tensor of non-negative loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _finish(loads: torch.Tensor, integer: bool) -> torch.Tensor:
    loads = loads.clamp_min(0.0)
    return loads.round() if integer else loads


def uniform(layers: int, items: int, seed: int = 0, integer: bool = True,
            low: float = 0.0, high: float = 1000.0) -> torch.Tensor:
    """Loads drawn uniformly from [low, high)."""
    if not 0 <= low < high:
        raise ValueError(f"uniform loads need 0 <= low < high, got low={low}, high={high}")
    u = torch.rand(layers, items, generator=_generator(seed), dtype=torch.float64)
    return _finish(low + (high - low) * u, integer)


def lognormal(layers: int, items: int, seed: int = 0, integer: bool = True,
              sigma: float = 1.0, scale: float = 1000.0) -> torch.Tensor:
    """``scale * exp(N(0, sigma))``: a few items far above the rest."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    z = torch.randn(layers, items, generator=_generator(seed), dtype=torch.float64)
    return _finish(scale * torch.exp(sigma * z), integer)


def zipf(layers: int, items: int, seed: int = 0, integer: bool = True,
         exponent: float = 1.0, tokens_per_layer: float = 1e5) -> torch.Tensor:
    """Power law: the item ranked r gets a share proportional to 1/r**exponent,
    with a fresh random ranking of the items in every layer."""
    if exponent < 0:
        raise ValueError(f"exponent must be >= 0, got {exponent}")
    generator = _generator(seed)
    shares = torch.arange(1, items + 1, dtype=torch.float64) ** -exponent
    shares = shares / shares.sum()
    ranks = torch.stack([torch.randperm(items, generator=generator) for _ in range(layers)])
    return _finish(tokens_per_layer * shares[ranks], integer)


def hot_experts(layers: int, items: int, seed: int = 0, integer: bool = True,
                num_hot: int = 4, hot_share: float = 0.5, tokens_per_layer: float = 1e5) -> torch.Tensor:
    """``num_hot`` random items share ``hot_share`` of each layer's tokens; the
    rest share the remainder evenly, with +-20% jitter."""
    if not 0 < num_hot < items:
        raise ValueError(f"num_hot must be between 1 and {items - 1}, got {num_hot}")
    if not 0 <= hot_share <= 1:
        raise ValueError(f"hot_share must be within [0, 1], got {hot_share}")
    generator = _generator(seed)
    jitter = 0.8 + 0.4 * torch.rand(layers, items, generator=generator, dtype=torch.float64)
    hot = torch.zeros(layers, items, dtype=torch.bool)
    for layer in range(layers):
        hot[layer, torch.randperm(items, generator=generator)[:num_hot]] = True
    cold_share = (1 - hot_share) / (items - num_hot)
    base = torch.where(hot, torch.full_like(jitter, hot_share / num_hot), torch.full_like(jitter, cold_share))
    loads = base * jitter
    loads = loads / loads.sum(dim=1, keepdim=True) * tokens_per_layer
    return _finish(loads, integer)


def moe(layers: int, items: int, seed: int = 0, integer: bool = True,
        skew: float = 1.2, correlation: float = 0.6, tokens_per_layer: float = 4e5) -> torch.Tensor:
    """A realistic MoE router profile: per-layer popularity ~ exp(skew * z), z
    correlated between neighbouring layers, scaled to a token total per layer."""
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must be within [0, 1), got {correlation}")
    generator = _generator(seed)
    z = torch.randn(layers, items, generator=generator, dtype=torch.float64)
    for layer in range(1, layers):
        z[layer] = correlation * z[layer - 1] + math.sqrt(1 - correlation**2) * z[layer]
    popularity = torch.exp(skew * z)
    return _finish(popularity / popularity.sum(dim=1, keepdim=True) * tokens_per_layer, integer)


def drifting_moe(steps: int, layers: int, items: int, seed: int = 0, integer: bool = True,
                 skew: float = 1.2, drift: float = 0.3, tokens_per_layer: float = 4e5) -> torch.Tensor:
    """[steps, layers, items]: a MoE profile whose hot items drift from step to
    step (``drift`` is how much of the popularity is renewed each step)."""
    if not 0 <= drift <= 1:
        raise ValueError(f"drift must be within [0, 1], got {drift}")
    generator = _generator(seed)
    z = torch.randn(layers, items, generator=generator, dtype=torch.float64)
    out = []
    for _ in range(steps):
        popularity = torch.exp(skew * z)
        out.append(popularity / popularity.sum(dim=1, keepdim=True) * tokens_per_layer)
        fresh = torch.randn(layers, items, generator=generator, dtype=torch.float64)
        z = math.sqrt(1 - drift) * z + math.sqrt(drift) * fresh
    return _finish(torch.stack(out), integer)


def drifting_from(weight: torch.Tensor, steps: int, seed: int = 0, drift: float = 0.3,
                  spread: float = 1.0) -> torch.Tensor:
    """[steps, layers, items]: a history that starts at ``weight`` [layers, items]
    and drifts: each item's log-load takes a random walk that renews ``drift``
    of itself each step (``spread`` its long-run standard deviation), every
    layer keeping its total. Step 0 is ``weight`` itself."""
    if not 0 <= drift <= 1:
        raise ValueError(f"drift must be within [0, 1], got {drift}")
    if steps < 1:
        raise ValueError(f"need at least 1 step, got {steps}")
    weight = torch.as_tensor(weight, dtype=torch.float64)
    generator = _generator(seed)
    z = torch.zeros_like(weight)
    out = [weight]
    for _ in range(steps - 1):
        fresh = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
        z = math.sqrt(1 - drift) * z + math.sqrt(drift) * spread * fresh
        loads = weight * torch.exp(z)
        total = loads.sum(dim=1, keepdim=True)
        out.append(torch.where(total > 0, loads / total.clamp_min(1e-300) * weight.sum(dim=1, keepdim=True), loads))
    return torch.stack(out)


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    description: str
    function: Callable[..., torch.Tensor]
    parameters: dict[str, tuple[float, float, float]]  # name -> (default, min, max)


GENERATORS: dict[str, GeneratorSpec] = {
    spec.name: spec
    for spec in (
        GeneratorSpec("moe", "Realistic MoE router loads: skewed, correlated across layers",
                      moe, {"skew": (1.2, 0.0, 4.0), "correlation": (0.6, 0.0, 0.99),
                            "tokens_per_layer": (4e5, 1.0, 1e12)}),
        GeneratorSpec("uniform", "Uniform loads in [low, high)",
                      uniform, {"low": (0.0, 0.0, 1e12), "high": (1000.0, 1e-9, 1e12)}),
        GeneratorSpec("lognormal", "Log-normal loads: a long tail of heavy items",
                      lognormal, {"sigma": (1.0, 0.0, 4.0), "scale": (1000.0, 1e-9, 1e12)}),
        GeneratorSpec("zipf", "Zipf-like power law with a random ranking per layer",
                      zipf, {"exponent": (1.0, 0.0, 3.0), "tokens_per_layer": (1e5, 1.0, 1e12)}),
        GeneratorSpec("hot", "A few hot experts take a given share of the tokens",
                      hot_experts, {"num_hot": (4, 1, 1000), "hot_share": (0.5, 0.0, 1.0),
                                    "tokens_per_layer": (1e5, 1.0, 1e12)}),
    )
}


def generate(kind: str, layers: int, items: int, seed: int = 0, integer: bool = True,
             **parameters: Any) -> torch.Tensor:
    """A [layers, items] matrix from the generator named ``kind``."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator {kind!r}; known: {', '.join(GENERATORS)}")
    if layers < 1 or items < 2:
        raise ValueError(f"need at least 1 layer and 2 items, got {layers} x {items}")
    spec = GENERATORS[kind]
    unknown = sorted(set(parameters) - set(spec.parameters))
    if unknown:
        raise ValueError(f"{kind} has no parameter {', '.join(unknown)}; it takes {', '.join(spec.parameters)}")
    if kind == "hot" and "num_hot" in parameters:
        parameters["num_hot"] = int(parameters["num_hot"])
    return spec.function(layers, items, seed=seed, integer=integer, **parameters)


def replicate_hot(weight: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Split the hottest items into replicas (EPLB's replication step) so that
    ``weight`` [L, n] becomes [L, num_slots] of per-replica loads; the map
    from slots to experts is ``packviz.data.experts.replicate``'s second result."""
    from packviz.data.experts import replicate

    return replicate(weight, num_slots)[0]
