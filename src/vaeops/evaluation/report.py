"""reports/report.md: the question, the measured numbers, the figures, and the conclusions those numbers support.

Every sentence that compares two numbers is chosen by a `claims.Claim`: its Monte-Carlo interval, its interval across
training seeds and the estimator's remaining bias. A difference they do not support is reported as inconclusive,
with the reason; no sentence is fixed text about a direction.
"""

from __future__ import annotations

import math
from typing import Any

from vaeops.core.params import EvaluateParams
from vaeops.evaluation import claims
from vaeops.evaluation.claims import Claim
from vaeops.evaluation.tables import fmt as _f
from vaeops.evaluation.tables import headline_table, seeds_table

# The model variants (train.variant) this report contrasts: the VAE trained on sampled z, the `plugin` model trained
# on the plug-in reconstruction term log p(x|z = mu), and the plain `autoencoder` (z = mu, no KL term).
VAE_MODEL, PLUGIN_MODEL, AUTOENCODER_MODEL = "vae", "plugin", "autoencoder"


def reconstruction_text(name: str, claim: Claim, h: dict[str, Any]) -> str:
    """One model's mean-vs-sampled finding, worded by its claim."""
    if claim.side > 0:
        return (
            f"`{name}`: decoding the mean reconstructs better. A sampled decode costs {_f(claim.diff)} nats more "
            f"cross-entropy per image ({claim.interval()}), and the mean decode wins on "
            f"{h['bce_share_mean_decode_better']:.0%} of the images."
        )
    if claim.side < 0:
        return (
            f"`{name}`: sampled decodes reconstruct better on average, by {_f(-claim.diff)} nats "
            f"({claim.interval()} for sampled - mean); the mean decode wins on only "
            f"{h['bce_share_mean_decode_better']:.0%} of the images."
        )
    return f"`{name}`: inconclusive, no measurable difference between mean and sampled decodes: {claim.reason}."


def jensen_text(name: str, claim: Claim, h: dict[str, Any]) -> str:
    """One model's Jensen-gap finding; whether the plug-in 'ELBO' even overshoots the estimated log p(x)."""
    if claim.side == 0:
        return f"`{name}`: the Jensen gap is not distinguishable from zero ({_f(claim.diff)} nats): {claim.reason}."
    direction = "overstates" if claim.side > 0 else "understates"
    text = (
        f"`{name}`: measured here, the plug-in log p(x|mu) {direction} the expectation E_q[log p(x|z)] by "
        f"{_f(abs(claim.diff))} nats per image ({claim.interval()})."
    )
    plug_in = h["log_px_mu"] - h["kl"]
    if plug_in > -h["nll"]:
        text += (
            f" The plug-in 'ELBO' log p(x|mu) - KL = {_f(plug_in)} is above even the importance-sampled "
            f"log p(x) ≈ {_f(-h['nll'])}: it is not a lower bound at all."
        )
    return text


def jensen_note() -> str:
    """What Jensen's inequality does and does not say here."""
    return (
        "Jensen's inequality fixes the sign of E[f(z)] - f(E[z]) only for a concave (or convex) f. log p(x|z) of an "
        "MLP decoder is neither in z, so the sign of the gap is an empirical result of each model, measured above, "
        "not a prediction."
    )


def k_text(name: str, study: list[dict[str, Any]], h: dict[str, Any], nll_k: int) -> str:
    """How one model's estimators behave as K grows, and whether L_K has stopped rising."""
    first, last = study[0], study[-1]
    if first["k"] == last["k"]:
        return f"`{name}`: one K only ({first['k']}); no trend to report."
    noise = first["elbo_std_image"] / last["elbo_std_image"] if last["elbo_std_image"] > 0 else float("inf")
    text = (
        f"`{name}`: the ELBO estimate's per-image noise falls from {_f(first['elbo_std_image'], 3)} nats at K = "
        f"{first['k']} to {_f(last['elbo_std_image'], 3)} at K = {last['k']}, a factor {_f(noise, 1)} "
        f"(1/sqrt(K) predicts {_f((last['k'] / first['k']) ** 0.5, 1)}), while its mean moves only from "
        f"{_f(first['elbo_mean'])} to {_f(last['elbo_mean'])}. L_K goes from {_f(first['iwae_mean'])} to "
        f"{_f(last['iwae_mean'])}; the NLL estimate at K = {nll_k} is {_f(h['nll'])} nats."
    )
    if h["nll_remaining_bias"] > 0:
        text += (
            f" L_K still gained {_f(h['nll_remaining_bias'])} nats from K = {study[-2]['k']} to {last['k']}: q(z|x) "
            "is a poor proposal for this model, its NLL estimate is an upper bound that more samples would lower, "
            "and no NLL difference smaller than that is claimed."
        )
    return text


def between_text(other: str, nll: Claim, recon: Claim, models: dict[str, dict[str, Any]]) -> str:
    """`other` against the `vae` model: density (NLL) and reconstruction (mean decode), each worded by its claim."""
    v, o = models[VAE_MODEL], models[other]
    if nll.side > 0:
        text = (
            f"The `vae` model has the lower NLL: {_f(nll.diff)} nats below `{other}` ({_f(v['nll'])} vs "
            f"{_f(o['nll'])}; {nll.interval()})."
        )
    elif nll.side < 0:
        text = (
            f"`{other}` has the lower NLL, by {_f(-nll.diff)} nats ({_f(o['nll'])} vs {_f(v['nll'])}; "
            f"{nll.interval()})."
        )
    else:
        text = f"Which of `vae` and `{other}` is the better density model is inconclusive: {nll.reason}."
    if recon.side < 0:
        text += (
            f" `{other}` reconstructs better from its mean (BCE {_f(o['bce_mean_decode'])} vs "
            f"{_f(v['bce_mean_decode'])};"
            f" {recon.interval()}): reconstruction error does not measure a generative model."
        )
    elif recon.side > 0:
        text += f" The `vae` model also reconstructs better from its mean ({recon.interval()} for {other} - vae)."
    else:
        text += f" Their mean-decode reconstructions do not differ measurably: {recon.reason}."
    return text


def autoencoder_text(models: dict[str, dict[str, Any]]) -> str:
    """What the plain autoencoder cannot do, from its own numbers: sample, or be scored as a density under N(0, I)."""
    a = models[AUTOENCODER_MODEL]
    text = (
        f"The autoencoder is trained on log p(x|z = mu) alone: no KL term and no sampling. Nothing ties its codes to "
        f"the prior: their mean length ‖E_q[z]‖ is {_f(a['code_norm'])} (a draw from N(0, I) in {a['latent_dim']} "
        f"dimensions has length about {_f(a['latent_dim'] ** 0.5)}), and its encoder's log-variance head never "
        f"received a gradient: its weights are as initialised, and the posterior std it gives (mean "
        f"{_f(a['mean_posterior_std'], 3)}) means nothing. Decoding z ~ N(0, I) "
        "therefore decodes codes it was never trained on: compare its row of prior samples with the `vae` row. "
    )
    if not math.isfinite(a["nll"]):
        return text + "Scored as a VAE with that q(z|x) and the prior N(0, I), its NLL estimate is not finite."
    text += (
        f"Scored as a VAE with that untrained q(z|x) and the prior N(0, I), its ELBO is {_f(a['elbo'])} nats and its "
        f"importance-sampled NLL is finite, {_f(a['nll'])} nats"
    )
    text += f" (`vae`: {_f(models[VAE_MODEL]['nll'])})" if VAE_MODEL in models else ""
    text += (
        f"; L_K was still rising by {_f(a['nll_remaining_bias'])} nats at the largest K, so that number is far "
        "from converged."
        if a["nll_remaining_bias"] > 0
        else "."
    )
    return text


def conclusion(metrics: dict[str, Any]) -> str:
    """The answer to "why sample?", assembled only from the findings the claims support."""
    models, points = metrics["models"], []
    name = VAE_MODEL if VAE_MODEL in models else next(iter(models))
    recon = claims.reconstruction(metrics, name)
    if recon.side > 0:
        points.append(
            f"Sampling is not for sharper reconstructions: for `{name}`, decoding the posterior mean gives "
            f"{_f(recon.diff)} nats lower cross-entropy than a sampled decode."
        )
    elif recon.side < 0:
        points.append(
            f"For `{name}` a sampled decode reconstructs better than the mean decode (by {_f(-recon.diff)} "
            "nats): log p(x|z) is not concave in z for this decoder."
        )
    gap = claims.jensen(metrics, name)
    if gap.side != 0:
        points.append(
            f"The ELBO needs E_q[log p(x|z)], and the plug-in log p(x|mu) is off by {_f(abs(gap.diff))} nats "
            f"per image ({'too high' if gap.side > 0 else 'too low'}): E[f(z)] ≠ f(E[z]). Only samples "
            "estimate the bound whose gradient trains the model."
        )
    for other in (PLUGIN_MODEL, AUTOENCODER_MODEL):
        if other not in metrics.get("comparisons", {}):
            continue
        nll = claims.nll_between(metrics, other)
        if nll.side > 0:
            points.append(
                f"Training on sampled z with the KL term gives the better density model than `{other}`: "
                f"{_f(nll.diff)} nats lower test NLL ({nll.interval()})."
            )
        elif nll.side < 0:
            points.append(f"On this data `{other}` has the lower NLL (by {_f(-nll.diff)} nats).")
        else:
            points.append(f"`vae` against `{other}` on NLL: inconclusive ({nll.reason}).")
    if models[name]["collapsed"]:
        points.append(
            "Caution: the posterior has collapsed (no latent dimension carries information), so the "
            "comparison says little about the latent code."
        )
    if not points:
        points.append("None of the effects is supported by these numbers; more images, samples or seeds are needed.")
    return "\n".join(f"- {p}" for p in points)


def scope(metrics: dict[str, Any], cfg: EvaluateParams) -> str:
    """Which images and which K each number uses, and which seeds."""
    seeds = metrics.get("seeds")
    text = (
        f"Measured on the `{metrics['split']}` split of `{metrics['dataset']}` ({metrics['pixels']} pixels, "
        f"binarization `{metrics['binarize']}`), evaluation seed {metrics['seed']}. Reconstructions and the Jensen "
        f"gap: all {metrics['images']:,} images, S = {cfg.recon_samples} draws each. NLL and ELBO: "
        f"{'all' if metrics['nll_images'] == metrics['images'] else 'a fixed, seeded subset of'} "
        f"{metrics['nll_images']:,} images, K = {metrics['nll_k']}"
        + (" (matmuls on bfloat16 inputs)" if metrics.get("precision") == "bf16" else "")
        + f". K study: {metrics['study_images']:,} images, K in {cfg.elbo_ks}, R = {cfg.elbo_repeats} repeats."
    )
    if seeds:
        text += (
            f" Training seeds: {', '.join(str(s) for s in next(iter(seeds['models'].values()))['seeds'])}; each "
            "headline difference has an interval across them beside its Monte-Carlo interval. The tables and "
            "figures show each model's seed with the best validation loss (for `vae`, the model that is exported)."
        )
    else:
        text += " One training seed per model: the intervals cover Monte-Carlo noise only."
    return text


def render_report(metrics: dict[str, Any], details: dict[str, Any], cfg: EvaluateParams) -> str:
    """The whole report as Markdown; figures are linked relative to the report's folder."""
    models = metrics["models"]
    likelihoods = {d["config"]["likelihood"] for d in details.values()}
    caveat = (
        "\n\nThe pixels are grey levels scored with a Bernoulli likelihood, which is not a normalised density on "
        "[0, 1]: the NLL compares these models with each other, not with published binarized-MNIST figures."
        if cfg.binarize == "none" and "bernoulli" in likelihoods
        else ""
    )
    architectures = ", ".join(
        f"`{n}` ({d['config']['input_dim']}-{'-'.join(map(str, d['config']['hidden']))}-"
        f"{d['config']['latent_dim']}, {d['config']['likelihood']})"
        for n, d in details.items()
    )
    sections = [
        "# Why sample z? Sampled against mean decoding in a VAE",
        "A VAE reconstructs x from z drawn from q(z|x). Why not decode the posterior mean, which looks less noisy, or "
        "drop the sampling and the KL term altogether? " + scope(metrics, cfg) + f" Models: {architectures}." + caveat,
        "## Headline numbers\n\n" + headline_table(models),
        "## 1. Reconstruction: mean decode against sampled decode\n\n"
        + "\n\n".join(reconstruction_text(n, claims.reconstruction(metrics, n), h) for n, h in models.items())
        + "\n\n![reconstructions](plots/reconstructions.png)",
        "## 2. The Jensen gap\n\n"
        + "\n\n".join(jensen_text(n, claims.jensen(metrics, n), h) for n, h in models.items())
        + "\n\n"
        + jensen_note()
        + "\n\n![per-image gaps](plots/gaps.png)\n\nFor a few test images, the value of "
        "log p(x|z) at each draw z ~ q(z|x), their mean (what the ELBO uses) and the plug-in value at z = mu:\n\n"
        "![why sample](plots/why_sample.png)",
        "## 3. Estimators as K grows\n\n"
        + "\n\n".join(k_text(n, details[n]["k_study"], h, metrics["nll_k"]) for n, h in models.items())
        + "\n\n![estimators against K, one row per model](plots/estimators_vs_k.png)",
        "## 4. Latent health\n\n"
        + "\n\n".join(
            f"`{n}`: {h['active_units']} of {h['latent_dim']} units active (Cov_x(E_q[z]) > {cfg.active_threshold}), "
            f"{h['collapsed_dims']} dimension(s) with mean KL below {cfg.collapse_kl} nats"
            + ("; the posterior has collapsed." if h["collapsed"] else ".")
            for n, h in models.items()
        )
        + "\n\n![latent means](plots/latent_2d.png)",
    ]
    for title, other in (
        ("5. The `plugin` model: trained on z = mu, with the KL term", PLUGIN_MODEL),
        ("6. The `autoencoder`: z = mu and no KL term", AUTOENCODER_MODEL),
    ):
        if other in metrics.get("comparisons", {}):
            text = between_text(
                other, claims.nll_between(metrics, other), claims.reconstruction_between(metrics, other), models
            )
            sections.append(
                f"## {title}\n\n{text}" + ("\n\n" + autoencoder_text(models) if other == AUTOENCODER_MODEL else "")
            )
    sections.append(
        f"## Prior samples\n\nEach row decodes the same {cfg.prior_samples} draws z ~ N(0, I) and shows the "
        "decoder's pixel means, not sampled pixels. Look first at whether they are digits at all: a model "
        "whose codes sit away from the prior (a mean code length far from sqrt(latent dims), in the table "
        "above) is asked here for codes it never saw. Sharpness is no guide: a decoder that is sure of "
        "every pixel looks crisp whatever its likelihood, so read each row beside that model's NLL."
        "\n\n![prior samples](plots/prior_samples.png)"
    )
    if metrics.get("seeds"):
        sections.append("## Across training seeds\n\n" + seeds_table(metrics["seeds"]))
    sections.append("## Conclusion\n\n" + conclusion(metrics))
    return "\n\n".join(sections) + "\n"
