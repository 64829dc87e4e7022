"""Which comparisons the numbers support, by rules docs/evaluation.md states; the report words only their verdicts.

- A difference has a direction only when its 95% interval over the test images excludes zero and, with several
  training seeds, the two-sided exact sign test over the seeds rejects "either sign equally likely" at 5% (six seeds
  that all agree give p = 0.031; five cannot reach 5%). Its size across seeds is the 95% t-interval of the mean.
- NLL estimates are -L_K, an upper bound on the NLL that more samples may still lower. "A has the lower NLL" needs,
  besides the above, that the model with the higher estimate has converged (L_K rose less than CONVERGED_RISE nats
  from K/10 to K on the same images and draws): otherwise its NLL may be lower than shown, and no direction is
  claimed. If only the lower estimate has not converged, the true difference is at least the one shown.
The report's wording functions take a `Claim`, never raw numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

CONVERGED_RISE = 0.1  # nats: L_K - L_{K/10} below this counts as a converged NLL estimate
ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    """One measured difference and its evidence; `side` is +1, -1 or 0 (inconclusive, with the reason)."""

    diff: float
    low: float  # 95% interval over the test images
    high: float
    seed_values: tuple[float, ...] = ()
    seed_low: float | None = None
    seed_high: float | None = None
    sign_p: float = 1.0
    side: int = 0
    reason: str = ""
    at_least: bool = False  # the true difference is at least `diff` (the lower NLL estimate has not converged)

    def interval(self) -> str:
        """What the intervals cover, in words: the test images, then the training seeds."""
        text = f"95% interval over test images [{self.low:,.2f}, {self.high:,.2f}]"
        if len(self.seed_values) > 1:
            values = ", ".join(f"{v:+,.2f}" for v in self.seed_values)
            text += (
                f"; over {len(self.seed_values)} training seeds {values}: 95% t-interval of the mean "
                f"[{self.seed_low:,.2f}, {self.seed_high:,.2f}], sign test p = {self.sign_p:.3f}"
            )
        return text


def sign_test(values: Sequence[float]) -> float:
    """Two-sided exact sign test: the p-value of the split of positive against negative values (zeros dropped)
    under "either sign equally likely"; 1.0 with no non-zero value."""
    signs = [v > 0 for v in values if v != 0]
    n, k = len(signs), sum(signs)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


def decide(diff: float, low: float, high: float, seeds: dict[str, Any] | None = None) -> Claim:
    """A Claim with its side chosen by the interval over test images, then the sign test over training seeds."""
    values = tuple(seeds["values"]) if seeds else ()
    base = Claim(
        diff,
        low,
        high,
        values,
        seeds.get("ci95_low") if seeds else None,
        seeds.get("ci95_high") if seeds else None,
        sign_test(values) if values else 1.0,
    )
    if low <= 0 <= high:
        return replace(base, reason=f"its 95% interval over test images [{low:,.2f}, {high:,.2f}] contains zero")
    if len(values) > 1:
        agree = sum(1 for v in values if (v > 0) == (diff > 0) and v != 0)
        if base.sign_p >= ALPHA or agree * 2 <= len(values):
            return replace(
                base,
                reason=f"{agree} of {len(values)} training seeds point the same way; the sign test (p = "
                f"{base.sign_p:.3f}) does not establish the direction at 5%",
            )
    return replace(base, side=1 if diff > 0 else -1)


def seed_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """A 95% t-interval for the mean of one quantity over training seeds; None with fewer than two seeds."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def _seeds(metrics: dict[str, Any], kind: str, name: str, key: str) -> dict[str, Any] | None:
    """One quantity's spread across training seeds in metrics["seeds"], or None without replicates."""
    return (((metrics.get("seeds") or {}).get(kind) or {}).get(name) or {}).get(key)


def jensen(metrics: dict[str, Any], name: str) -> Claim:
    """The Jensen gap log p(x|mu) - E_q[log p(x|z)] of one model (> 0: the mean decode has the higher likelihood,
    and the plug-in log p(x|mu) overstates the ELBO's reconstruction term)."""
    h = metrics["models"][name]
    seeds = _seeds(metrics, "models", name, "jensen_gap")
    return decide(h["jensen_gap"], h["jensen_gap_ci95_low"], h["jensen_gap_ci95_high"], seeds)


def nll_between(metrics: dict[str, Any], other: str, reference: str = "vae") -> Claim:
    """NLL estimate of `other` minus the reference's on the same images (> 0: the reference is the better density
    model), by the convergence rule of the module docstring."""
    c, models = metrics["comparisons"][other], metrics["models"]
    claim = decide(
        c["nll_minus_vae"],
        c["nll_diff_ci95_low"],
        c["nll_diff_ci95_high"],
        _seeds(metrics, "comparisons", other, "nll_minus_vae"),
    )
    if claim.side == 0:
        return claim
    higher, lower = (other, reference) if claim.side > 0 else (reference, other)
    if not models[higher]["nll_converged"]:
        return replace(
            claim,
            side=0,
            reason=f"`{higher}`'s NLL estimate has not converged (L_K still rose "
            f"{models[higher]['nll_last_decade_rise']:,.2f} nats from K/10 to K), so its NLL may be lower than "
            "shown",
        )
    return replace(claim, at_least=not models[lower]["nll_converged"])


def reconstruction_between(metrics: dict[str, Any], other: str) -> Claim:
    """log p(x|mu) of `other` minus the reference's (> 0: `other`'s mean decode reconstructs better)."""
    c = metrics["comparisons"][other]
    seeds = _seeds(metrics, "comparisons", other, "log_px_mu_minus_vae")
    return decide(c["log_px_mu_minus_vae"], c["log_px_mu_diff_ci95_low"], c["log_px_mu_diff_ci95_high"], seeds)
