"""The Learn page's chapter on why plans age: a plan made on traffic already served, used on traffic to come.

A serving engine re-plans on the window it has just seen and serves the next one with that plan. On a
real prefill trace (DeepSeek-V2-Lite, ``packviz.data.traffic``) the windows do not drift: each holds
other prompts, so an expert's load is its lasting popularity plus a part drawn afresh each window. A
plan fitted to one window fits that window's noise as well, and serves the next one worse than it
planned; a plan made on the mean of the last K windows averages the noise away.

The chapter's windows come from its loads [E] (one layer): the loads' shares are the lasting
popularity, and each window draws ``sum(loads)`` tokens from it with the prefill trace's
window-to-window noise (``PREFILL.batch_sd`` on the log of each share), seeded by the loads, so a
link replays the same windows. Both plans are DeepSeek's EPLB (``packviz.eplb.place`` with
``eplb``) on one node, global policy; every number is computed from them.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from packviz.data.traffic import PREFILL
from packviz.eplb.cluster import Cluster, gpu_load, place
from packviz.teach.chapter_texts import ChapterText
from packviz.teach.eplb_lessons import Bars, EplbStep
from packviz.teach.narration import fmt
from packviz.teach.quiz import Question
from packviz.validate import slot_counts_hint

AGING_CODE = (
    "each window, count the tokens each expert served",
    "plan A on the last window alone (an engine's re-plan)",
    "plan B on the mean of the last K windows",
    "serve the next window with each plan: balancedness = mean GPU / busiest GPU",
    "do it again window after window: which forecast serves better?",
)
# windows after the first next one, over which the last step compares the two ways of planning
FOLLOWING = 11
PLAN_A, PLAN_B = "plan A (last window)", "plan B (mean of the last {k})"


def aging_windows(loads: tuple[float, ...], count: int) -> torch.Tensor:
    """[count, E] token counts: the loads' shares as the lasting popularity, each window ``sum(loads)``
    tokens drawn from it with fresh noise on the log of each share (the prefill trace's)."""
    tokens = round(sum(loads))
    popularity = np.asarray(loads, dtype=np.float64)
    if tokens <= 0 or not popularity.any():
        return torch.zeros(count, len(loads), dtype=torch.float64)
    seed = zlib.crc32(",".join(repr(float(v)) for v in loads).encode())
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore"):
        log_share = np.log(popularity / popularity.sum())
    windows = []
    for _ in range(count):
        noisy = np.exp(log_share + PREFILL.batch_sd * rng.standard_normal(len(loads)))
        windows.append(rng.multinomial(tokens, noisy / noisy.sum()))
    return torch.tensor(np.array(windows), dtype=torch.float64)


def _balancedness(gpus: list[float]) -> float:
    busiest = max(gpus)
    return sum(gpus) / len(gpus) / busiest if busiest > 0 else 1.0


def _gpu_bars(title: str, window: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster,
              labels: tuple[str, ...] | None = None) -> tuple[Bars, list[float]]:
    """The GPUs' loads under a plan on one window [E], each stacked from its replicas' shares."""
    counts = torch.bincount(phy2log[0], minlength=window.shape[0]).to(torch.float64)
    share = (window / counts.clamp(min=1)).tolist()
    per_gpu = cluster.slots_per_gpu
    slots = phy2log[0].tolist()
    parts = tuple(tuple((f"expert {e}", share[e]) for e in slots[g * per_gpu:(g + 1) * per_gpu])
                  for g in range(cluster.num_gpus))
    totals = gpu_load(window[None], phy2log, cluster)[0].tolist()
    busiest = max(range(cluster.num_gpus), key=lambda g: (totals[g], -g))
    return Bars(title, labels or tuple(f"GPU {g}" for g in range(cluster.num_gpus)), parts, (busiest,),
                sum(totals) / cluster.num_gpus, "mean GPU"), totals


def _expert_bars(title: str, loads: list[float], marked: tuple[int, ...] = ()) -> Bars:
    return Bars(title, tuple(f"expert {e}" for e in range(len(loads))),
                tuple(((f"expert {e}", v),) for e, v in enumerate(loads)), marked, sum(loads) / len(loads),
                "mean expert")


def aging_steps(loads: tuple[float, ...], num_slots: int, num_windows: int, num_gpus: int) -> list[EplbStep]:
    """The chapter's steps on ``loads`` [E]: ``num_windows`` windows seen, plans A and B made on them, both
    served on the next window, then both ways of planning over the windows that follow."""
    experts = len(loads)
    if num_slots < experts or num_slots % num_gpus:
        raise ValueError(f"{num_slots} slots must be at least the {experts} experts and split evenly over "
                         f"{num_gpus} GPUs ({slot_counts_hint(num_slots, experts, num_gpus)})")
    if num_windows < 2:
        raise ValueError(f"{num_windows} windows seen: plan B averages at least 2")
    k = num_windows
    cluster = Cluster(num_slots, None, 1, num_gpus, "global")
    windows = aging_windows(loads, k + 1 + FOLLOWING)
    seen, coming = windows[:k], windows[k]
    last, mean = seen[-1], seen.mean(dim=0)
    plan_a = place(last[None], cluster, "eplb").phy2log
    plan_b = place(mean[None], cluster, "eplb").phy2log
    name_b = PLAN_B.format(k=k)

    swings = [(float(seen[:, e].max() - seen[:, e].min()), e) for e in range(experts)]
    swing, swinging = max(swings, key=lambda s: (s[0], -s[1]))
    opening = (f"{k} windows of traffic have been served, {fmt(float(last.sum()))} tokens each. Each window holds "
               "other prompts, so the experts' loads move from window to window: expert "
               f"{swinging} served between {fmt(float(seen[:, swinging].min()))} and "
               f"{fmt(float(seen[:, swinging].max()))} tokens (a swing of {fmt(swing)}). The bars are the last "
               "window's." if swing > 0 else
               f"{k} windows of traffic have been served, {fmt(float(last.sum()))} tokens each, and here every "
               "window is the same (no traffic, or one expert takes every token): a plan made on one serves the "
               "next as planned.")
    steps = [EplbStep(_expert_bars(f"tokens per expert in window {k - 1}, the last seen", last.tolist(),
                                   (swinging,) if swing > 0 else ()), opening, 0, "start")]
    hottest = max(range(experts), key=lambda e: (float(last[e]), -e))
    steps.append(EplbStep(_expert_bars(f"tokens per expert, mean of windows 0-{k - 1}", mean.tolist(), (hottest,)), (
        f"The mean of the {k} windows: expert {hottest}, the hottest in the last window with "
        f"{fmt(float(last[hottest]))}, averages {fmt(float(mean[hottest]))}. A mean keeps what lasts (how popular "
        "each expert is) and loses what one window drew by chance."), 0, "seen"))
    bars_a, planned_a = _gpu_bars("plan A's GPUs on the last window", last, plan_a, cluster)
    steps.append(EplbStep(bars_a, (
        f"Plan A is DeepSeek's EPLB on the last window alone, as an engine re-plans: on that window its busiest GPU "
        f"holds {fmt(max(planned_a))} against a mean of {fmt(sum(planned_a) / num_gpus)}, balancedness "
        f"{fmt(_balancedness(planned_a))}."), 1, "plan A"))
    bars_b, planned_b = _gpu_bars(f"plan B's GPUs on the mean of {k} windows", mean, plan_b, cluster)

    next_labels = tuple(f"GPU {g} ({plan})" for plan in ("A", "B") for g in range(num_gpus))
    on_next_a, served_a_gpus = _gpu_bars("", coming, plan_a, cluster)
    on_next_b, served_b_gpus = _gpu_bars("", coming, plan_b, cluster)
    served_a, served_b = _balancedness(served_a_gpus), _balancedness(served_b_gpus)
    answer = PLAN_A if served_a > served_b else name_b if served_b > served_a else None
    question = None
    if answer is not None:
        other = name_b if answer == PLAN_A else PLAN_A
        question = Question(
            f"Plan A fits the last window (balancedness {fmt(_balancedness(planned_a))} there), plan B the mean of "
            f"the last {k} ({fmt(_balancedness(planned_b))} on it). Which serves the next window better?",
            (PLAN_A, name_b), answer,
            f"On window {k} plan A serves {fmt(served_a)} and plan B {fmt(served_b)}.", (),
            ((other, f"serves {fmt(min(served_a, served_b))} on window {k}, the other "
                     f"{fmt(max(served_a, served_b))}."),))
    steps.append(EplbStep(bars_b, (
        f"Plan B is the same EPLB on the mean of the {k} windows: on that mean its busiest GPU holds "
        f"{fmt(max(planned_b))} against {fmt(sum(planned_b) / num_gpus)}, balancedness "
        f"{fmt(_balancedness(planned_b))}. Neither plan has seen window {k}, which comes next."), 2, "plan B",
        question=question))

    busiest_a = max(range(num_gpus), key=lambda g: (served_a_gpus[g], -g))
    busiest_b = max(range(num_gpus), key=lambda g: (served_b_gpus[g], -g))
    both = Bars(f"window {k}, which neither plan saw: each plan's GPUs", next_labels, on_next_a.parts + on_next_b.parts,
                (busiest_a, num_gpus + busiest_b), sum(served_a_gpus) / num_gpus, "mean GPU")
    verdict = ("Plan A serves it better" if answer == PLAN_A else "Plan B serves it better" if answer == name_b
               else "Both serve it alike")
    steps.append(EplbStep(both, (
        f"Window {k} comes. Plan A planned {fmt(_balancedness(planned_a))} and serves {fmt(served_a)} (busiest GPU "
        f"{busiest_a} with {fmt(served_a_gpus[busiest_a])}); plan B serves {fmt(served_b)} (busiest GPU {busiest_b} "
        f"with {fmt(served_b_gpus[busiest_b])}). {verdict}: a plan is judged on traffic it has not seen."), 3,
        "next window"))

    # window after window: each plan made on what was seen before it, served on the window that follows
    rows_a, rows_b, promised = [], [], []
    for t in range(k, k + 1 + FOLLOWING):
        history, served = windows[t - k:t], windows[t]
        a = place(history[-1][None], cluster, "eplb").phy2log
        b = place(history.mean(dim=0)[None], cluster, "eplb").phy2log
        promised.append(_balancedness(gpu_load(history[-1][None], a, cluster)[0].tolist()))
        rows_a.append(_balancedness(gpu_load(served[None], a, cluster)[0].tolist()))
        rows_b.append(_balancedness(gpu_load(served[None], b, cluster)[0].tolist()))
    mean_a, mean_b = sum(rows_a) / len(rows_a), sum(rows_b) / len(rows_b)
    mean_promised = sum(promised) / len(promised)
    aging = (f" Planned on one window, plan A's way promises {fmt(mean_promised)} on average and serves "
             f"{fmt(mean_a)}: it fitted that window's chance as well as what lasts." if mean_promised > mean_a else "")
    wins_b = sum(b > a for a, b in zip(rows_a, rows_b))
    summary = Bars(f"mean balancedness served on the next window, over {len(rows_a)} windows",
                   (PLAN_A, name_b), (((PLAN_A, mean_a),), ((name_b, mean_b),)),
                   (0 if mean_a >= mean_b else 1,), 1.0, "perfect", axis="balancedness (mean GPU / busiest)")
    steps.append(EplbStep(summary, (
        f"Over {len(rows_a)} windows, each plan made on what was seen before it: plan A's way serves "
        f"{fmt(mean_a)} on average (worst {fmt(min(rows_a))}), plan B's {fmt(mean_b)} (worst {fmt(min(rows_b))}); B is "
        f"better on {wins_b} of {len(rows_a)} windows.{aging}"), 4, "over time"))
    return steps


def served_means(steps: list[EplbStep]) -> tuple[float, float]:
    """The mean balancedness the last-window way and the mean-of-K way serve over the following
    windows, as the chapter's last step draws them."""
    (mean_a,), (mean_b,) = ([value for _, value in bar] for bar in steps[-1].bars.parts)
    return mean_a, mean_b


def aging_text(steps: list[EplbStep]) -> ChapterText:
    """The chapter's text, from its steps."""
    mean_a, mean_b = served_means(steps)
    planned = _balancedness(next(step for step in steps if step.phase == "plan A").bars.totals)
    text = ("A serving engine re-plans on the traffic it has just served and uses the plan on the traffic to come. "
            f"Here plan A, made on the last window, planned {fmt(planned)} there; over the windows that follow that "
            f"way of planning serves {fmt(mean_a)} on average, and a plan on the mean of the last windows "
            f"{fmt(mean_b)}.")
    if mean_b > mean_a:
        return ChapterText(text + " Averaging the windows wins: the windows differ by chance, and a mean keeps "
                                  "what lasts.", True)
    return ChapterText(text + " On these loads the last window is as good a forecast: the windows differ too "
                              "little by chance for a mean to help.", False)
