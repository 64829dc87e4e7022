"""reports/report.md: the question, the measured numbers, the figures, and the conclusions those numbers support.

Every sentence that states a finding is chosen by the numbers (signs, confidence intervals, ratios), never fixed text.
"""

from __future__ import annotations

import math
from typing import Any

from vaeops.core.params import EvaluateParams

# The model variants (train.variant) this report contrasts when both were evaluated: the VAE trained on sampled z,
# and the `plugin` model trained on the plug-in reconstruction term log p(x|z = mu).
VAE_MODEL, PLUGIN_MODEL = "vae", "plugin"


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _ci(low: float, high: float) -> str:
    return f"[{_f(low)}, {_f(high)}]"


def _verdict(low: float, high: float) -> int:
    """+1 when a 95% interval lies above zero, -1 below, 0 when it contains zero."""
    return 1 if low > 0 else -1 if high < 0 else 0


def headline_table(models: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table of every headline number."""
    names = list(models)
    rows = [
        ("NLL, importance-sampled (nats)", lambda h: f"{_f(h['nll'])} ± {_f(h['nll_se'])}"),
        ("NLL (bits/dim)", lambda h: _f(h["nll_bits_per_dim"], 4)),
        ("ELBO (nats)", lambda h: _f(h["elbo"])),
        ("E_q[log p(x|z)] (nats)", lambda h: _f(h["recon_term"])),
        ("KL(q(z|x) ‖ p(z)) (nats)", lambda h: _f(h["kl"])),
        ("log p(x) - ELBO, estimated (nats)", lambda h: _f(h["bound_gap"])),
        ("BCE, mean decode z = mu", lambda h: _f(h["bce_mean_decode"])),
        ("BCE, sampled z ~ q (avg over S)", lambda h: _f(h["bce_sampled"])),
        ("BCE sampled - mean (95% CI)", lambda h: f"{_f(h['bce_diff_mean'])} {_ci(h['bce_diff_ci95_low'], h['bce_diff_ci95_high'])}"),
        ("images where the mean decode has lower BCE", lambda h: f"{h['bce_share_mean_decode_better']:.1%}"),
        ("squared error, mean decode", lambda h: _f(h["se_mean_decode"], 3)),
        ("squared error, sampled", lambda h: _f(h["se_sampled"], 3)),
        ("SE sampled - mean (95% CI)", lambda h: f"{_f(h['se_diff_mean'], 3)} [{_f(h['se_diff_ci95_low'], 3)}, {_f(h['se_diff_ci95_high'], 3)}]"),
        ("log p(x|z = mu) (nats)", lambda h: _f(h["log_px_mu"])),
        ("Jensen gap log p(x|mu) - E_q[log p(x|z)]", lambda h: f"{_f(h['jensen_gap'])} ± {_f(h['jensen_gap_se'])}"),
        ("active units / latent dims", lambda h: f"{h['active_units']} / {h['latent_dim']}"),
        ("collapsed dims (KL below threshold)", lambda h: str(h["collapsed_dims"])),
        ("mean posterior std", lambda h: _f(h["mean_posterior_std"], 3)),
    ]
    lines = ["| | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(fmt(models[n]) for n in names) + " |" for label, fmt in rows]
    return "\n".join(lines)


def reconstruction_text(name: str, h: dict[str, Any]) -> str:
    """One model's mean-vs-sampled finding, worded by the sign of the 95% interval."""
    side = _verdict(h["bce_diff_ci95_low"], h["bce_diff_ci95_high"])
    ci = _ci(h["bce_diff_ci95_low"], h["bce_diff_ci95_high"])
    if side > 0:
        return (f"`{name}`: decoding the mean reconstructs better. A sampled decode costs {_f(h['bce_diff_mean'])} nats "
                f"more cross-entropy per image (95% CI {ci}), and the mean decode wins on "
                f"{h['bce_share_mean_decode_better']:.0%} of the images.")
    if side < 0:
        return (f"`{name}`: sampled decodes reconstruct better on average, by {_f(-h['bce_diff_mean'])} nats "
                f"(95% CI of sampled - mean {ci}); the mean decode wins on only {h['bce_share_mean_decode_better']:.0%} of the images.")
    return (f"`{name}`: no measurable difference between mean and sampled decodes (95% CI of the difference {ci} "
            "contains zero).")


def jensen_text(name: str, h: dict[str, Any]) -> str:
    """One model's Jensen-gap finding; says whether the plug-in 'ELBO' even overshoots the estimated log p(x)."""
    low, high = h["jensen_gap"] - 1.96 * h["jensen_gap_se"], h["jensen_gap"] + 1.96 * h["jensen_gap_se"]
    plug_in = h["log_px_mu"] - h["kl"]
    side = _verdict(low, high)
    if side == 0:
        return f"`{name}`: the Jensen gap is not distinguishable from zero ({_f(h['jensen_gap'])} ± {_f(h['jensen_gap_se'])} nats)."
    direction = "overstates" if side > 0 else "understates"
    text = (f"`{name}`: the plug-in log p(x|mu) {direction} the expectation E_q[log p(x|z)] by {_f(abs(h['jensen_gap']))} "
            f"nats per image (± {_f(h['jensen_gap_se'])}).")
    if plug_in > -h["nll"]:
        text += (f" The plug-in 'ELBO' log p(x|mu) - KL = {_f(plug_in)} is above even the importance-sampled "
                 f"log p(x) ≈ {_f(-h['nll'])}: it is not a lower bound at all.")
    else:
        text += f" Here the plug-in value log p(x|mu) - KL = {_f(plug_in)} stays below log p(x) ≈ {_f(-h['nll'])}."
    return text


def final_rise(study: list[dict[str, Any]]) -> float | None:
    """How much L_K still rose between the last two K values, when that exceeds its Monte-Carlo noise; else None."""
    if len(study) < 2:
        return None
    rise = study[-1]["iwae_mean"] - study[-2]["iwae_mean"]
    return rise if rise > max(0.05, 3 * study[-1]["iwae_std_dataset"]) else None


def k_table(details: dict[str, Any]) -> str:
    """ELBO_K and L_K with their per-image spread, one row per K, models side by side."""
    names = list(details)
    header = "| K | " + " | ".join(f"`{n}` ELBO_K (std) | `{n}` L_K (std)" for n in names) + " |"
    lines = [header, "|---|" + "---|---|" * len(names)]
    for i, row in enumerate(details[names[0]]["k_study"]):
        cells = []
        for n in names:
            r = details[n]["k_study"][i]
            cells += [f"{_f(r['elbo_mean'])} ({_f(r['elbo_std_image'], 3)})", f"{_f(r['iwae_mean'])} ({_f(r['iwae_std_image'], 3)})"]
        lines.append(f"| {row['k']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def k_text(name: str, study: list[dict[str, Any]], h: dict[str, Any], nll_k: int) -> str:
    """How one model's estimators behave as K grows: noise ratio against 1/sqrt(K), and whether L_K rises."""
    first, last = study[0], study[-1]
    if first["k"] == last["k"]:
        return f"`{name}`: one K only ({first['k']}); no trend to report."
    noise = first["elbo_std_image"] / last["elbo_std_image"] if last["elbo_std_image"] > 0 else math.inf
    expected = math.sqrt(last["k"] / first["k"])
    rises = all(b["iwae_mean"] >= a["iwae_mean"] for a, b in zip(study, study[1:]))
    text = (f"`{name}`: the ELBO estimate's per-image noise falls from {_f(first['elbo_std_image'], 3)} nats at K = "
            f"{first['k']} to {_f(last['elbo_std_image'], 3)} at K = {last['k']}, a factor {_f(noise, 1)} "
            f"(1/sqrt(K) predicts {_f(expected, 1)}), while its mean moves only from {_f(first['elbo_mean'])} to "
            f"{_f(last['elbo_mean'])}: more samples buy precision, not a better bound. ")
    if rises:
        text += f"L_K rises with K, from {_f(first['iwae_mean'])} to {_f(last['iwae_mean'])}"
        text += "." if last["k"] == nll_k else f", and reaches {_f(-h['nll'])} at K = {nll_k}, the NLL estimate."
    else:
        text += "L_K does not rise monotonically over the K list here: the differences are within its Monte-Carlo noise."
    rise = final_rise(study)
    if rise is not None:
        text += (f" It still gained {_f(rise)} nats from K = {study[-2]['k']} to {study[-1]['k']}: q(z|x) is a poor "
                 f"proposal for this model, and its NLL estimate is an upper bound that more samples would lower.")
    return text


def plugin_text(models: dict[str, dict[str, Any]], comparison: dict[str, float] | None, plugin_rise: float | None) -> str:
    """The `vae` model (trained on sampled z) against the `plugin` model (trained on z = mu), when both were evaluated."""
    if comparison is None:
        return f"Only one of the `{VAE_MODEL}` and `{PLUGIN_MODEL}` models was evaluated, so there is no side-by-side verdict."
    s, m = models[VAE_MODEL], models[PLUGIN_MODEL]
    c = comparison
    ci = _ci(c["nll_diff_ci95_low"], c["nll_diff_ci95_high"])
    side = _verdict(c["nll_diff_ci95_low"], c["nll_diff_ci95_high"])
    if side > 0:
        text = (f"The `vae` model, trained with sampled z, has the lower estimated NLL: {_f(c['nll_plugin_minus_vae'])} "
                f"nats below the `plugin` model's ({_f(s['nll'])} vs {_f(m['nll'])}; paired 95% CI {ci}), "
                f"and lower on {c['share_images_vae_better']:.0%} of the images.")
        if plugin_rise is not None:
            text += (f" Part of this gap is the `plugin` model's poor proposal: its L_K was still rising ({_f(plugin_rise)} nats over "
                     "the last step of the K study), so its true NLL is lower than estimated.")
    elif side < 0:
        text = (f"Here the `plugin` model has the lower NLL, by {_f(-c['nll_plugin_minus_vae'])} nats "
                f"({_f(m['nll'])} vs {_f(s['nll'])}; paired 95% CI of plugin - vae {ci}).")
    else:
        text = f"The two NLLs ({_f(s['nll'])} and {_f(m['nll'])}) do not differ at 95% (paired CI {ci})."
    if m["bce_mean_decode"] < s["bce_mean_decode"]:
        text += (f" Yet the `plugin` model reconstructs best of all when it decodes its mean (BCE {_f(m['bce_mean_decode'])} "
                 f"vs {_f(s['bce_mean_decode'])}): reconstruction error does not measure a generative model.")
    text += (f" Its encoder variance plays no part in its training (mean posterior std {_f(m['mean_posterior_std'], 2)} "
             f"vs {_f(s['mean_posterior_std'], 2)}), so its sampled reconstructions cost {_f(m['bce_diff_mean'])} nats more "
             f"than its mean decodes and its ELBO is {_f(m['elbo'])} against {_f(s['elbo'])}.")
    return text


def conclusion(models: dict[str, dict[str, Any]], comparison: dict[str, float] | None) -> str:
    """The answer to "why sample?", assembled from the findings that hold in these numbers."""
    points = []
    name = VAE_MODEL if VAE_MODEL in models else next(iter(models))
    ref = models[name]
    recon = _verdict(ref["bce_diff_ci95_low"], ref["bce_diff_ci95_high"])
    if recon > 0:
        points.append(f"Sampling is not for sharper reconstructions: for `{name}`, decoding the posterior mean gives "
                      f"{_f(ref['bce_diff_mean'])} nats lower cross-entropy than a sampled decode.")
    elif recon < 0:
        points.append(f"For `{name}` a sampled decode even reconstructs better than the mean decode (by "
                      f"{_f(-ref['bce_diff_mean'])} nats): log p(x|z) is not concave in z for this decoder.")
    gap_low, gap_high = ref["jensen_gap"] - 1.96 * ref["jensen_gap_se"], ref["jensen_gap"] + 1.96 * ref["jensen_gap_se"]
    if _verdict(gap_low, gap_high) != 0:
        points.append(f"The ELBO needs E_q[log p(x|z)], and the plug-in log p(x|mu) is off by {_f(abs(ref['jensen_gap']))} "
                      f"nats per image ({'too high' if ref['jensen_gap'] > 0 else 'too low'}): E[f(z)] ≠ f(E[z]). Only "
                      "samples estimate the bound whose gradient trains the model.")
    if comparison is not None:
        side = _verdict(comparison["nll_diff_ci95_low"], comparison["nll_diff_ci95_high"])
        if side > 0:
            points.append(f"Training on sampled z gives the better generative model: {_f(comparison['nll_plugin_minus_vae'])} "
                          "nats lower test NLL than decoding the mean during training; compare the prior samples.")
        elif side < 0:
            points.append(f"On this data the `plugin` model has the lower NLL (by {_f(-comparison['nll_plugin_minus_vae'])}"
                          " nats): the case for sampling rests on the bound, not on the density estimate here.")
    if ref["collapsed"]:
        points.append("Caution: the posterior has collapsed (no latent dimension carries information), so the "
                      "comparison says little about the latent code.")
    if not points:
        points.append("None of the effects reached significance at 95% on this split; more images or samples are needed.")
    return "\n".join(f"- {p}" for p in points)


def render_report(metrics: dict[str, Any], details: dict[str, Any], cfg: EvaluateParams) -> str:
    """The whole report as Markdown; figures are linked relative to the report's folder."""
    models = metrics["models"]
    comparison = metrics.get("comparison")
    likelihoods = {d["config"]["likelihood"] for d in details.values()}
    caveat = ("\n\nThe pixels are grey levels scored with a Bernoulli likelihood, which is not a normalised density on "
              "[0, 1]: the NLL compares these models with each other, not with published binarized-MNIST figures."
              if cfg.binarize == "none" and "bernoulli" in likelihoods else "")
    sections = [
        "# Why sample z? Sampled against mean decoding in a VAE",
        "A VAE reconstructs x from z drawn from q(z|x). Why not decode the posterior mean, which looks less noisy? "
        f"Measured on the `{metrics['split']}` split of `{metrics['dataset']}` ({metrics['images']:,} images, "
        f"{metrics['pixels']} pixels, binarization `{metrics['binarize']}`), evaluation seed {metrics['seed']}, "
        f"S = {cfg.recon_samples} reconstruction samples, K in {cfg.elbo_ks} with R = {cfg.elbo_repeats} repeats, "
        f"NLL with K = {metrics['nll_k']}" + (" (matmuls on bfloat16 inputs)" if metrics.get("precision") == "bf16" else "")
        + ". Models: " + ", ".join(
            f"`{n}` ({d['config']['input_dim']}-{'-'.join(map(str, d['config']['hidden']))}-{d['config']['latent_dim']}, "
            f"{d['config']['likelihood']})" for n, d in details.items()) + "." + caveat,
        "## Headline numbers\n\n" + headline_table(models),
        "## 1. Reconstruction: mean decode against sampled decode\n\n" + "\n\n".join(
            reconstruction_text(n, h) for n, h in models.items()) + "\n\n![reconstructions](plots/reconstructions.png)",
        "## 2. The Jensen gap\n\n" + "\n\n".join(jensen_text(n, h) for n, h in models.items())
        + "\n\n![per-image gaps](plots/gaps.png)",
        "## 3. Estimators as K grows\n\n" + k_table(details) + "\n\n" + "\n\n".join(
            k_text(n, details[n]["k_study"], h, metrics["nll_k"]) for n, h in models.items())
        + "\n\n![estimators against K](plots/estimators_vs_k.png)",
        "## 4. Latent health\n\n" + "\n\n".join(
            f"`{n}`: {h['active_units']} of {h['latent_dim']} units active (Cov_x(E_q[z]) > {cfg.active_threshold}), "
            f"{h['collapsed_dims']} dimension(s) with mean KL below {cfg.collapse_kl} nats"
            + ("; the posterior has collapsed." if h["collapsed"] else ".") for n, h in models.items())
        + "\n\n![latent means](plots/latent_2d.png)",
        "## 5. The `plugin` model: trained on z = mu\n\n" + plugin_text(models, comparison, final_rise(details[PLUGIN_MODEL]["k_study"]) if PLUGIN_MODEL in details else None) + "\n\n![prior samples](plots/prior_samples.png)",
        "## Conclusion\n\n" + conclusion(models, comparison),
    ]
    return "\n\n".join(sections) + "\n"
