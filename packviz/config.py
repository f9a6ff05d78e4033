"""Packer configuration and the named presets.

Every algorithm in packviz is one :class:`PackerConfig` run through the one
engine in :mod:`packviz.engine`; a preset is only a named configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

SwapScope = Literal["extremes", "top-k", "heaviest-vs-all", "paired"]
SwapScore = Literal["spread", "variance"]
SelectBy = Literal["spread", "max_load"]
StartKind = Literal["greedy", "snake", "differencing"]

SWAP_SCOPES: tuple[str, ...] = ("extremes", "top-k", "heaviest-vs-all", "paired")
SWAP_SCORES: tuple[str, ...] = ("spread", "variance")
SELECT_BY: tuple[str, ...] = ("spread", "max_load")
START_KINDS: tuple[str, ...] = ("greedy", "snake", "differencing")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class PackerConfig:
    """Every knob of the balanced-packing engine.

    num_restarts: fills per layer; restart 0 is never perturbed, so it is
        DeepSeek's plain greedy (the snake fill with ``start="snake"``). Pruned
        by spread it is always refined; pruned by max load no fill heavier than
        it is kept before it. No candidate whose heaviest pack outweighs it is
        chosen, so the result is never worse than the greedy (the snake fill).
    noise_min, noise_max: restart r multiplies each item's sort key by
        ``1 + U(0, 1) * s_r`` with ``s_r`` spread linearly from min to max
        (restart 0: 0). With ``differencing``, restart r >= 1 takes the scale
        of restart r - 1 of that line: restart 1 has ``noise_min`` (the plain
        differencing by default), and two restarts have no noise at all.
    num_refined: restarts with the smallest initial spread kept for refinement.
    one_swap, two_swap: which refinement moves are searched.
    swap_scope: which packs a move may join: ``extremes`` (heaviest with
        lightest), ``top-k`` (the ``scope_k`` heaviest with the ``scope_k``
        lightest), ``heaviest-vs-all`` (heaviest with every other pack),
        ``paired`` (the i-th heaviest with the i-th lightest, all pairs moving
        at once; where no pair improves, heaviest-vs-all).
    swap_score: how a move is ranked: ``spread`` scores ``D - |D - 2d|``,
        ``variance`` scores ``2 d (D - d)`` (d moved, D the packs' difference).
    two_swap_max_pack_size: 2-swap is searched only while items per pack is
        at most this (the seed uses 24); ``None`` lifts the cap.
    two_swap_when_stuck: search 2-swaps only for candidates where no 1-swap
        helps (cheaper); the seed searches both every time and takes the best.
    max_iterations: refinement iterations at most.
    start: how each restart fills the packs: ``greedy`` (each item, heaviest
        first, into the lightest pack with room), ``snake`` (dealt in
        serpentine order 0..m-1, m-1..0, ...: vectorised) or ``differencing``
        (the balanced largest differencing method: the items, in rows of m
        by the restart's order, are partial packings of one item per pack;
        the two with the largest spread merge, heaviest pack with lightest,
        until one is left: k - 1 vectorised merges instead of n steps; on
        the default sample about 3 times nearer the lower bound than the
        greedy, though with few items per pack the greedy can be better).
        With ``differencing``, restart 0 is still the plain greedy (the
        guarantee's anchor); noise perturbs the later restarts' orders.
    select_by: what pruning and the final choice minimise: ``spread``
        (heaviest minus lightest, the seed's) or ``max_load`` (the heaviest).
        By max load, the lighter of the unperturbed fills is always kept and
        no final candidate heavier than it once refined is chosen, so a config
        otherwise alike but with more restarts, candidates or iterations (``best`` against
        ``fast``) is never heavier than one with fewer.
    stop_at_lower_bound: a candidate stops refining once its heaviest pack
        reaches the layer's lower bound (nothing can beat it).
    relative_tolerance: differences below this fraction of a layer's largest
        load count as ties, so the placement does not depend on the unit.
    seed: seeds the noise; the same input, config and seed give the same
        placement on the same device.
    device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    num_restarts: int = 256
    noise_min: float = 0.0
    noise_max: float = 0.2
    num_refined: int = 8
    one_swap: bool = True
    two_swap: bool = True
    swap_scope: SwapScope = "extremes"
    scope_k: int = 4
    swap_score: SwapScore = "spread"
    two_swap_max_pack_size: int | None = 24
    two_swap_when_stuck: bool = False
    max_iterations: int = 50
    start: StartKind = "greedy"
    select_by: SelectBy = "spread"
    stop_at_lower_bound: bool = False
    relative_tolerance: float = 1e-12
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid packer config: " + "; ".join(problems))

    def replace(self, **changes: Any) -> PackerConfig:
        """A copy with some fields changed; unknown names raise ValueError."""
        unknown = sorted(set(changes) - set(OPTION_NAMES))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)}; "
                f"known options: {', '.join(OPTION_NAMES)}"
            )
        return dataclasses.replace(self, **changes)

    @property
    def refines(self) -> bool:
        return (self.one_swap or self.two_swap) and self.max_iterations > 0


def _problems(config: PackerConfig) -> list[str]:
    problems = []
    for name in ("num_restarts", "num_refined"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} must be a whole number >= 1, got {value!r}")
    for name in ("max_iterations", "scope_k", "seed"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{name} must be a whole number >= 0, got {value!r}")
    if isinstance(config.scope_k, int) and config.scope_k < 1:
        problems.append(f"scope_k must be >= 1, got {config.scope_k!r}")
    for name in ("noise_min", "noise_max", "relative_tolerance"):
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
            0.0 <= float(value) < float("inf")
        ):
            problems.append(f"{name} must be a finite number >= 0, got {value!r}")
    if not problems and config.noise_min > config.noise_max:
        problems.append(
            f"noise_min ({config.noise_min}) must not exceed noise_max ({config.noise_max})"
        )
    cap = config.two_swap_max_pack_size
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 2):
        problems.append(f"two_swap_max_pack_size must be None or >= 2, got {cap!r}")
    for name, allowed in (
        ("swap_scope", SWAP_SCOPES),
        ("swap_score", SWAP_SCORES),
        ("select_by", SELECT_BY),
        ("start", START_KINDS),
        ("device", DEVICES),
    ):
        if getattr(config, name) not in allowed:
            problems.append(
                f"{name} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}"
            )
    for name in ("one_swap", "two_swap", "stop_at_lower_bound", "two_swap_when_stuck"):
        if not isinstance(getattr(config, name), bool):
            problems.append(f"{name} must be True or False, got {getattr(config, name)!r}")
    return problems


def restart_noise_scales(config: PackerConfig) -> list[float]:
    """Each restart's noise scale (see ``noise_min``, ``noise_max``)."""
    count = config.num_restarts
    line = [config.noise_min + (config.noise_max - config.noise_min) * r / (count - 1) if count > 1
            else config.noise_min for r in range(count)]
    if config.start == "differencing" and count > 1:
        line = [0.0, *line[:-1]]
    return [0.0, *line[1:]]


def restart_rule(config: PackerConfig, restart: int) -> str:
    """How restart ``restart`` fills: ``greedy``, ``snake`` or ``differencing``."""
    if config.start == "differencing" and restart == 0:
        return "greedy"
    return config.start


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PackerConfig))


@dataclass(frozen=True)
class Preset:
    """A named config. ``never_heavier_than``: presets whose expert placement
    (``rebalance_experts``) this one is never heavier than on any layer's
    busiest GPU: each layer takes the lightest of its own plan and theirs.
    (``pack`` needs no such help: a config with more restarts, candidates or
    iterations refines the same lightest unperturbed fill further.)"""

    name: str
    description: str
    config: PackerConfig
    never_heavier_than: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "eplb",
            "DeepSeek EPLB's plain greedy: sort descending, each item to the lightest "
            "pack with room; no restarts, no refinement.",
            PackerConfig(num_restarts=1, noise_max=0.0, num_refined=1, one_swap=False,
                         two_swap=False, max_iterations=0),
        ),
        Preset(
            "restarts-1swap",
            "The seed before: 2048 noisy restarts, the best 64 refined by 1-swaps between "
            "the 4 heaviest and the 4 lightest packs.",
            PackerConfig(num_restarts=2048, num_refined=64, one_swap=True, two_swap=False,
                         swap_scope="top-k", scope_k=4, swap_score="variance"),
        ),
        Preset(
            "restarts-2swap",
            "The seed after: 256 noisy restarts, the best 8 refined by the best 1-swap or "
            "2-swap between the heaviest and the lightest pack.",
            PackerConfig(num_restarts=256, num_refined=8, one_swap=True, two_swap=True,
                         swap_scope="extremes", swap_score="spread"),
        ),
        Preset(
            "fast",
            "packviz's fast packer: the plain greedy and the differencing method fill, the lighter is refined "
            "by the best 1-swap or 2-swap of every i-th heaviest / i-th lightest pack pair at once (the "
            "heaviest against all when stuck), for at most 10 rounds or until the lower bound.",
            PackerConfig(num_restarts=2, num_refined=1, one_swap=True, two_swap=True, swap_scope="paired",
                         two_swap_max_pack_size=None, max_iterations=10, start="differencing",
                         select_by="max_load", stop_at_lower_bound=True),
        ),
        Preset(
            "best",
            "packviz's strongest packer: the greedy, the differencing method and four noisy differencing "
            "fills; the four lightest are refined by the best 1-swap or 2-swap of every heaviest/lightest pack "
            "pair at once, for at most 80 rounds or until the lower bound.",
            PackerConfig(num_restarts=6, num_refined=4, one_swap=True, two_swap=True, swap_scope="paired",
                         two_swap_max_pack_size=None, max_iterations=80, start="differencing",
                         select_by="max_load", stop_at_lower_bound=True),
            never_heavier_than=("fast",),
        ),
    )
}

DEFAULT_PRESET = "restarts-2swap"


def preset_of(packer: str | PackerConfig) -> Preset | None:
    """The preset named ``packer``, or whose config it is (seed and device aside)."""
    if isinstance(packer, str):
        return PRESETS.get(packer)
    for preset in PRESETS.values():
        if preset.config == dataclasses.replace(packer, seed=preset.config.seed, device=preset.config.device):
            return preset
    return None


def resolve_config(preset: str | PackerConfig = DEFAULT_PRESET, **options: Any) -> PackerConfig:
    """The preset's config with single fields overridden by ``options``."""
    if isinstance(preset, PackerConfig):
        base = preset
    else:
        if preset not in PRESETS:
            raise ValueError(
                f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}"
            )
        base = PRESETS[preset].config
    return base.replace(**options) if options else base
