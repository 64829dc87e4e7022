"""reports/report.md: the question, the measured numbers, the figures, and the conclusions those numbers support.

Every sentence that compares two numbers is chosen by a `claims.Claim` (the rules are in `claims` and
docs/evaluation.md): its interval over the test images, the sign test over training seeds and, for an NLL, whether
the higher estimate has converged. A difference they do not support is reported as not claimed, with the reason.
"""

from __future__ import annotations

import math
from typing import Any

from vaeops.core.params import EvaluateParams
from vaeops.evaluation import claims
from vaeops.evaluation.claims import Claim
from vaeops.evaluation.tables import density_table, reconstruction_table, seeds_table
from vaeops.evaluation.tables import fmt as _f

# The model variants (train.variant) this report contrasts: the VAE trained on sampled z, the `plugin` model trained
# on the plug-in reconstruction term log p(x|z = mu), and the plain `autoencoder` (z = mu, no KL term).
VAE_MODEL, PLUGIN_MODEL, AUTOENCODER_MODEL = "vae", "plugin", "autoencoder"


def gap_text(name: str, claim: Claim, h: dict[str, Any], untrained_variance: bool = False) -> str:
    """One model's Jensen gap, which is also the cost of a sampled decode, worded by its claim."""
    if untrained_variance:
        lead = (
            f'`{name}`: its encoder\'s log-variance head never received a gradient, so its "sampled decode" draws '
            "from an untrained q(z|x): these numbers describe that head, not sampling."
        )
    else:
        lead = f"`{name}`:"
    if claim.side == 0:
        return f"{lead} the Jensen gap ({_f(claim.diff)} nats) is inconclusive: {claim.reason}."
    better = "the mean decode" if claim.side > 0 else "a sampled decode"
    better = better.capitalize() if lead.endswith(".") else better
    return (
        f"{lead} {better} has the higher log-likelihood: log p(x|z = mu) = {_f(h['log_px_mu'])} against "
        f"E_q[log p(x|z)] = {_f(h['e_log_px'])}, a Jensen gap of {_f(claim.diff)} nats per image ({claim.interval()};"
        f" Monte-Carlo part ± {_f(1.96 * h['jensen_gap_mc_se'], 3)}); the mean decode is better on "
        f"{h['share_mean_decode_better']:.0%} of the images. The posterior predictive mean, the average of the S "
        f"decoded images, scores log p(x|x_bar) = {_f(h['log_px_predictive'])}."
    )


def identity_note(likelihood: str) -> str:
    """Why the gap is also the reconstruction cost, and why the predictive mean scores at least E_q."""
    loss = (
        "the binary cross-entropy of the decoded image, -log p(x|z)"
        if likelihood == "bernoulli"
        else "the squared error divided by 2 sigma^2, plus a constant"
    )
    return (
        f"One number, two readings. For a {likelihood} likelihood the reconstruction loss is {loss}, so the extra "
        "loss of a sampled decode over the mean decode is exactly log p(x|z = mu) - E_q[log p(x|z)], the Jensen "
        "gap: the plug-in log p(x|mu) overstates the ELBO's reconstruction term by just what a sampled decode "
        "costs. The log-likelihood is concave in the decoded pixel means, so the predictive mean scores at least "
        "E_q[log p(x|z)]; it need not score below log p(x|z = mu)."
    )


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
    if not h["nll_converged"]:
        text += (
            f" L_K still rose {_f(h['nll_last_decade_rise'])} nats from K = {nll_k // 10} to {nll_k} on the same "
            "images and draws: q(z|x) is a poor proposal for this model, and its NLL may be lower than the estimate."
        )
    return text


def between_text(other: str, nll: Claim, recon: Claim, models: dict[str, dict[str, Any]]) -> str:
    """`other` against the `vae` model: density (NLL) and reconstruction (mean decode), each worded by its claim."""
    v, o = models[VAE_MODEL], models[other]
    at_least = "at least " if nll.at_least else ""
    if nll.side > 0:
        text = (
            f"The `vae` model has the lower NLL: {at_least}{_f(nll.diff)} nats below `{other}` ({_f(v['nll'])} vs "
            f"{_f(o['nll'])}; {nll.interval()})."
        )
    elif nll.side < 0:
        text = (
            f"`{other}` has the lower NLL, by {at_least}{_f(-nll.diff)} nats ({_f(o['nll'])} vs {_f(v['nll'])}; "
            f"{nll.interval()})."
        )
    else:
        text = (
            f"Which of `vae` and `{other}` is the better density model is not claimed: {nll.reason} (estimates "
            f"{_f(v['nll'])} and {_f(o['nll'])})."
        )
    if recon.side > 0:
        text += (
            f" `{other}` reconstructs better from its mean (log p(x|z = mu) {_f(o['log_px_mu'])} vs "
            f"{_f(v['log_px_mu'])}; {recon.interval()}): reconstruction does not measure a generative model."
        )
    elif recon.side < 0:
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
        f"; L_K still rose {_f(a['nll_last_decade_rise'])} nats over the last decade of K, so that number may "
        "fall well below the estimate."
        if not a["nll_converged"]
        else "."
    )
    return text


def conclusion(metrics: dict[str, Any]) -> str:
    """The answer to "why sample?", assembled only from the findings the claims support."""
    models, points = metrics["models"], []
    name = VAE_MODEL if VAE_MODEL in models else next(iter(models))
    gap = claims.jensen(metrics, name)
    if gap.side > 0:
        points.append(
            f"Sampling is not for sharper reconstructions: for `{name}`, the mean decode's log-likelihood is "
            f"{_f(gap.diff)} nats per image above a sampled decode's. That same number is why the ELBO needs "
            "samples: the plug-in log p(x|mu) overstates E_q[log p(x|z)] by it, E[f(z)] ≠ f(E[z]), and only "
            "samples estimate the bound whose gradient trains the model."
        )
    elif gap.side < 0:
        points.append(
            f"For `{name}` a sampled decode has the higher log-likelihood than the mean decode (by "
            f"{_f(-gap.diff)} nats): log p(x|z) is not concave in z for this decoder."
        )
    for other in (PLUGIN_MODEL, AUTOENCODER_MODEL):
        if other not in metrics.get("comparisons", {}):
            continue
        nll = claims.nll_between(metrics, other)
        if nll.side > 0:
            points.append(
                f"Training on sampled z with the KL term gives the better density model than `{other}`: "
                f"{'at least ' if nll.at_least else ''}{_f(nll.diff)} nats lower test NLL ({nll.interval()})."
            )
        elif nll.side < 0:
            points.append(f"On this data `{other}` has the lower NLL (by {_f(-nll.diff)} nats).")
        else:
            points.append(f"`vae` against `{other}` on NLL: not claimed ({nll.reason}).")
    if models[name]["collapsed"]:
        points.append(
            "Caution: the posterior has collapsed (no latent dimension carries information), so the "
            "comparison says little about the latent code."
        )
    if not points:
        points.append("None of the effects is supported by these numbers; more images, samples or seeds are needed.")
    return "\n".join(f"- {p}" for p in points)


def scope(metrics: dict[str, Any], cfg: EvaluateParams) -> str:
    """Which images and which draws each table uses, and which training seeds."""
    seeds = metrics.get("seeds")
    subset = "all" if metrics["nll_images"] == metrics["images"] else "a fixed, seeded subset of"
    text = (
        f"Measured on the `{metrics['split']}` split of `{metrics['dataset']}` ({metrics['pixels']} pixels, "
        f"binarization `{metrics['binarize']}`), evaluation seed {metrics['seed']}. Two image sets, each with its "
        f"own draws: the reconstruction table and section 1 use all {metrics['images']:,} images with S = "
        f"{cfg.recon_samples} draws each; the density table, the K study and sections 2, 4 and 5 use {subset} "
        f"{metrics['nll_images']:,} images, the NLL with K = {metrics['nll_k']} draws"
        + (" (matmuls on bfloat16 inputs)" if metrics.get("precision") == "bf16" else "")
        + f", the study with K in {cfg.elbo_ks} and R = {cfg.elbo_repeats} repeats."
        " Every interval is 95% and says what it covers: the test images (the finite set measured), Monte-Carlo "
        "draws (images fixed, draws repeated), or training seeds."
    )
    if seeds:
        listed = ", ".join(str(s) for s in next(iter(seeds["models"].values()))["seeds"])
        text += (
            f" Training seeds: {listed}. A direction is claimed only when the sign test over them rejects 'either "
            "sign' at 5%; the size across seeds is a 95% t-interval. The tables and figures show each model's seed "
            "with the best validation loss (for `vae`, the model that is exported)."
        )
    else:
        text += " One training seed per model: the findings are about these trained models, not the method."
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
        "## Headline numbers\n\n### Reconstruction: all "
        f"{metrics['images']:,} images, S = {cfg.recon_samples} draws each\n\n"
        + reconstruction_table(models)
        + f"\n\n### Density: {metrics['nll_images']:,} images, K = {metrics['nll_k']} draws each\n\n"
        + density_table(models),
        "## 1. The mean decode, a sampled decode, and the Jensen gap\n\n"
        + "\n\n".join(
            gap_text(n, claims.jensen(metrics, n), h, untrained_variance=n == AUTOENCODER_MODEL)
            for n, h in models.items()
        )
        + "\n\n"
        + identity_note(next(iter(details.values()))["config"]["likelihood"])
        + " "
        + jensen_note()
        + "\n\n![reconstructions](plots/reconstructions.png)\n\n![per-image gaps](plots/gaps.png)\n\nFor a few "
        "test images, the value of log p(x|z) at each draw z ~ q(z|x), their mean (what the ELBO uses) and the "
        "plug-in value at z = mu:\n\n![why sample](plots/why_sample.png)",
        "## 2. Estimators as K grows\n\n"
        + "\n\n".join(k_text(n, details[n]["k_study"], h, metrics["nll_k"]) for n, h in models.items())
        + "\n\n![estimators against K, one row per model](plots/estimators_vs_k.png)",
        "## 3. Latent health\n\n"
        + "\n\n".join(
            f"`{n}`: {h['active_units']} of {h['latent_dim']} units active (Cov_x(E_q[z]) > {cfg.active_threshold}), "
            f"{h['collapsed_dims']} dimension(s) with mean KL below {cfg.collapse_kl} nats"
            + ("; the posterior has collapsed." if h["collapsed"] else ".")
            for n, h in models.items()
        )
        + "\n\n![latent means](plots/latent_2d.png)",
    ]
    for title, other in (
        ("4. The `plugin` model: trained on z = mu, with the KL term", PLUGIN_MODEL),
        ("5. The `autoencoder`: z = mu and no KL term", AUTOENCODER_MODEL),
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
