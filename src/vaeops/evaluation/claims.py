"""Which comparisons the numbers support: a difference is claimed only when every interval and the bias allow it.

A difference between two estimates is reported with a direction only when its Monte-Carlo 95% interval excludes
zero, the interval across training seeds (when there are replicates) excludes zero, and it is larger than the
estimator's remaining bias (how much L_K still rose over the last step of the K study). Otherwise the report calls it
inconclusive and says which of these held it back. The report's wording functions take a `Claim`, never raw numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Claim:
    """One measured difference and the evidence around it; `side` is +1, -1 or 0 (inconclusive), with the reason."""

    diff: float
    low: float
    high: float
    seed_low: float | None = None
    seed_high: float | None = None
    seeds: int = 1
    bias: float = 0.0
    side: int = 0
    reason: str = ""

    def interval(self) -> str:
        """'95% CI [a, b]', plus the interval across seeds when there is one."""
        text = f"95% CI [{self.low:,.2f}, {self.high:,.2f}]"
        if self.seed_low is not None:
            text += f"; across {self.seeds} training seeds [{self.seed_low:,.2f}, {self.seed_high:,.2f}]"
        return text


def decide(
    diff: float,
    low: float,
    high: float,
    seed_interval: tuple[float, float] | None = None,
    seeds: int = 1,
    bias: float = 0.0,
) -> Claim:
    """A Claim with its side chosen by the evidence: Monte-Carlo interval, seed interval, then the estimator's bias."""
    seed_low, seed_high = seed_interval if seed_interval is not None else (None, None)
    base = Claim(diff, low, high, seed_low, seed_high, seeds, bias)
    if low <= 0 <= high:
        return _with(base, 0, f"its 95% Monte-Carlo interval [{low:,.2f}, {high:,.2f}] contains zero")
    if seed_low is not None and seed_low <= 0 <= seed_high:
        return _with(
            base,
            0,
            f"across {seeds} training seeds the interval [{seed_low:,.2f}, {seed_high:,.2f}] "
            "contains zero: another seed could flip the sign",
        )
    if abs(diff) <= bias:
        return _with(
            base,
            0,
            f"it is smaller than the estimator's remaining bias: L_K still rose {bias:,.2f} nats over "
            "the last step of the K study",
        )
    return _with(base, 1 if diff > 0 else -1, "")


def _with(claim: Claim, side: int, reason: str) -> Claim:
    return Claim(
        claim.diff, claim.low, claim.high, claim.seed_low, claim.seed_high, claim.seeds, claim.bias, side, reason
    )


def seed_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """A 95% t-interval for the mean of one quantity over training seeds; None with fewer than two seeds."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def remaining_bias(study: list[dict[str, Any]]) -> float:
    """How much L_K still rose over the last step of the K study when that exceeds its noise (else 0): how far the
    NLL estimate may still be above the true NLL, at least."""
    if len(study) < 2:
        return 0.0
    rise = study[-1]["iwae_mean"] - study[-2]["iwae_mean"]
    return rise if rise > max(0.05, 3 * study[-1]["iwae_std_dataset"]) else 0.0


def _seed(metrics: dict[str, Any], kind: str, name: str, key: str) -> tuple[tuple[float, float] | None, int]:
    """The interval across training seeds of one quantity in metrics["seeds"], and how many seeds it has."""
    entry = (metrics.get("seeds") or {}).get(kind, {}).get(name, {})
    spread = entry.get(key)
    if not spread or spread.get("ci95_low") is None:
        return None, 1
    return (spread["ci95_low"], spread["ci95_high"]), len(spread["values"])


def reconstruction(metrics: dict[str, Any], name: str) -> Claim:
    """Sampled minus mean-decode cross-entropy of one model (> 0: the mean decode reconstructs better)."""
    h = metrics["models"][name]
    interval, seeds = _seed(metrics, "models", name, "bce_diff_mean")
    return decide(h["bce_diff_mean"], h["bce_diff_ci95_low"], h["bce_diff_ci95_high"], interval, seeds)


def jensen(metrics: dict[str, Any], name: str) -> Claim:
    """The Jensen gap log p(x|mu) - E_q[log p(x|z)] of one model (> 0: the plug-in overstates the expectation)."""
    h = metrics["models"][name]
    interval, seeds = _seed(metrics, "models", name, "jensen_gap")
    half = 1.96 * h["jensen_gap_se"]
    return decide(h["jensen_gap"], h["jensen_gap"] - half, h["jensen_gap"] + half, interval, seeds)


def nll_between(metrics: dict[str, Any], other: str, reference: str = "vae") -> Claim:
    """NLL of `other` minus the reference's on the same images (> 0: the reference is the better density model);
    the bias is the larger remaining rise of L_K of the two models."""
    c = metrics["comparisons"][other]
    interval, seeds = _seed(metrics, "comparisons", other, "nll_minus_vae")
    bias = max(
        metrics["models"][other].get("nll_remaining_bias", 0.0),
        metrics["models"][reference].get("nll_remaining_bias", 0.0),
    )
    return decide(c["nll_minus_vae"], c["nll_diff_ci95_low"], c["nll_diff_ci95_high"], interval, seeds, bias)


def reconstruction_between(metrics: dict[str, Any], other: str) -> Claim:
    """Mean-decode cross-entropy of `other` minus the reference's (< 0: `other` reconstructs better)."""
    c = metrics["comparisons"][other]
    interval, seeds = _seed(metrics, "comparisons", other, "bce_mean_decode_minus_vae")
    return decide(c["bce_mean_decode_minus_vae"], c["bce_diff_ci95_low"], c["bce_diff_ci95_high"], interval, seeds)
