"""The report's Markdown tables: every headline number side by side, and each difference across training seeds."""

from __future__ import annotations

from typing import Any


def fmt(value: float, digits: int = 2) -> str:
    """A number with thousands separators and `digits` decimals."""
    return f"{value:,.{digits}f}"


def headline_table(models: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table of every headline number."""
    names = list(models)
    rows = [
        ("NLL, importance-sampled (nats)", lambda h: f"{fmt(h['nll'])} ± {fmt(h['nll_se'])}"),
        ("L_K still rising at the largest K by (nats)", lambda h: fmt(h["nll_remaining_bias"])),
        ("NLL (bits/dim)", lambda h: fmt(h["nll_bits_per_dim"], 4)),
        ("ELBO (nats)", lambda h: fmt(h["elbo"])),
        ("E_q[log p(x|z)] (nats)", lambda h: fmt(h["recon_term"])),
        ("KL(q(z|x) ‖ p(z)) (nats)", lambda h: fmt(h["kl"])),
        ("BCE, mean decode z = mu", lambda h: fmt(h["bce_mean_decode"])),
        ("BCE, sampled z ~ q (avg over S)", lambda h: fmt(h["bce_sampled"])),
        (
            "BCE sampled - mean (95% CI)",
            lambda h: f"{fmt(h['bce_diff_mean'])} [{fmt(h['bce_diff_ci95_low'])}, {fmt(h['bce_diff_ci95_high'])}]",
        ),
        (
            "squared error, mean decode / sampled",
            lambda h: f"{fmt(h['se_mean_decode'], 3)} / {fmt(h['se_sampled'], 3)}",
        ),
        ("log p(x|z = mu) (nats)", lambda h: fmt(h["log_px_mu"])),
        ("Jensen gap log p(x|mu) - E_q[log p(x|z)]", lambda h: f"{fmt(h['jensen_gap'])} ± {fmt(h['jensen_gap_se'])}"),
        ("active units / latent dims", lambda h: f"{h['active_units']} / {h['latent_dim']}"),
        (
            "mean posterior std / mean ‖E_q[z]‖",
            lambda h: f"{fmt(h['mean_posterior_std'], 3)} / {fmt(h['code_norm'], 2)}",
        ),
    ]
    lines = ["| | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(fmt(models[n]) for n in names) + " |" for label, fmt in rows]
    return "\n".join(lines)


def seeds_table(seeds: dict[str, Any]) -> str:
    """Each headline difference per training seed, with its mean and 95% interval across seeds."""
    lines = ["| quantity | per seed | mean | 95% interval across seeds |", "|---|---|---|---|"]
    entries = [(f"`{n}` BCE sampled - mean", s["bce_diff_mean"]) for n, s in seeds["models"].items()]
    entries += [(f"`{n}` Jensen gap", s["jensen_gap"]) for n, s in seeds["models"].items()]
    entries += [(f"NLL `{n}` - `vae`", c["nll_minus_vae"]) for n, c in seeds["comparisons"].items()]
    for label, spread in entries:
        values = ", ".join(fmt(v) for v in spread["values"])
        interval = f"[{fmt(spread['ci95_low'])}, {fmt(spread['ci95_high'])}]" if spread["ci95_low"] is not None else "-"
        lines.append(f"| {label} | {values} | {fmt(spread['mean'])} | {interval} |")
    return "\n".join(lines)
