"""The JSON reports stages hand to one another, as schemas: evaluation metrics, the headline, the promotion decision.

The evaluation metrics and the decision travel inside a champion bundle (`metrics.json`, `promotion.json`), so they
are part of its contract; the gate, the export, the flow and the page read them through these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vaeops.core.artifacts import Artifact


class ModelEstimates(Artifact):
    """One model's evaluation on the test split (docs/evaluation.md defines each quantity and its image set).

    Every interval is 95%: `*_ci95_*` over the test images (draws as they fell); `jensen_gap_mc_se` is the
    Monte-Carlo part alone (images fixed, draws repeated)."""

    nll: float  # -L_K on the nll_images, K = nll_k: an upper bound on the NLL that may still fall with K
    nll_ci95_low: float
    nll_ci95_high: float
    nll_last_decade_rise: float  # L_K - L_{K/10} on the same images and draws
    nll_converged: bool  # the rise is below claims.CONVERGED_RISE
    nll_bits_per_dim: float
    elbo: float
    kl: float
    bound_gap: float
    log_px_mu: float  # the mean decode's log-likelihood log p(x|z = mu)
    e_log_px: float  # E_q[log p(x|z)]: the expected log-likelihood of a sampled decode (S draws)
    log_px_predictive: float  # log p(x|x_bar): the posterior predictive mean, the average of S decoded images
    jensen_gap: float  # log p(x|mu) - E_q[log p(x|z)], from the same draws
    jensen_gap_ci95_low: float
    jensen_gap_ci95_high: float
    jensen_gap_mc_se: float
    share_mean_decode_better: float  # share of images with a positive gap
    se_mean_decode: float
    se_sampled: float
    code_norm: float
    elbo_std_k_first: float  # per-image spread of ELBO_K at the smallest K of the study (evaluate.elbo_ks[0])
    elbo_std_k_last: float  # and at the largest
    latent_dim: int
    active_units: int
    collapsed_dims: int
    mean_posterior_std: float
    collapsed: bool


class Comparison(Artifact):
    """Another model against `vae` on the same images and draws, paired; intervals 95% over the test images."""

    nll_minus_vae: float
    nll_diff_ci95_low: float
    nll_diff_ci95_high: float
    share_images_vae_better: float
    log_px_mu_minus_vae: float  # > 0: the other model's mean decode reconstructs better
    log_px_mu_diff_ci95_low: float
    log_px_mu_diff_ci95_high: float


class Spread(Artifact):
    """One quantity across training seeds: per-seed values, their mean and sd, the 95% t-interval of the mean
    (size), and the two-sided exact sign test of "the values are as likely negative as positive" (direction)."""

    values: list[float]
    mean: float
    sd: float
    ci95_low: float | None  # None with one seed: no interval
    ci95_high: float | None
    sign_test_p: float


class SeedModel(Artifact):
    """One model's headline quantities across its training seeds."""

    seeds: list[int]
    nll: Spread
    jensen_gap: Spread
    log_px_mu: Spread


class SeedComparison(Artifact):
    """Another model against `vae`, seed by seed."""

    seeds: list[int]
    nll_minus_vae: Spread
    log_px_mu_minus_vae: Spread


class SeedSpread(Artifact):
    """Every model and comparison across training seeds."""

    models: dict[str, SeedModel]
    comparisons: dict[str, SeedComparison]


class EvaluationMetrics(Artifact):
    """`reports/metrics.json`: what the evaluate stage measured, on which data, with which budgets."""

    dataset: str
    split: Literal["train", "val", "test"]
    images: int
    nll_images: int
    pixels: int
    binarize: str
    seed: int
    nll_k: int
    elbo_ks: list[int]
    precision: str
    data_sha256: str
    models: dict[str, ModelEstimates]
    comparisons: dict[str, Comparison] = {}
    seeds: SeedSpread | None = None


class Headline(Artifact):
    """`reports/headline.json`, the one DVC metric: each model's NLL and the `vae` model's Jensen gap (2 decimals,
    so `dvc metrics show` fits 80 columns)."""

    nll: dict[str, float]
    gap: dict[str, float] = {}


class PairedNLL(Artifact):
    """Champion and challenger scored on the same images and draws: the paired gain champion - challenger."""

    images: int
    split: str
    binarize: str
    k: int
    seed: int
    champion_nll: float
    challenger_nll: float
    gain: float
    gain_se: float
    gain_ci95_low: float
    gain_ci95_high: float
    share_challenger_better: float = Field(ge=0, le=1)


class ModelVerdict(Artifact):
    """The headline numbers of one model the gate reads from its metrics."""

    nll: float
    active_units: int
    collapsed: bool


class Challenger(ModelVerdict):
    """What the gate knows about the new model."""

    model: str
    model_version: str
    data_sha256: str
    validation_passed: bool
    validated_data_sha256: str | None
    parity: dict[str, float]
    checkpoint: str
    contract: dict[str, str | int | list[int]]


class ChampionEvidence(Artifact):
    """What the gate knows about the champion it may replace."""

    model_version: str
    data_sha256: str
    nll: float
    contract: dict[str, str | int | list[int]]
    checkpoint: str | None


class PromotionDecision(Artifact):
    """`reports/promotion.json` (and the champion's copy): the verdict, every reason, the evidence."""

    promoted: bool
    reasons: list[str]
    challenger: Challenger
    previous_champion: ChampionEvidence | None
    champion: str | None
    champion_dir: str
    same_data_comparison: PairedNLL | None
    nll_margin: float
