"""The report's Markdown tables, one image set and one set of draws each, cells escaped for Markdown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, Callable[[dict[str, Any]], str]]


def fmt(value: float, digits: int = 2) -> str:
    """A number with thousands separators and `digits` decimals."""
    return f"{value:,.{digits}f}"


def cell(text: str) -> str:
    """A table cell: `|` escaped, since E_q[log p(x|z)] would otherwise split the row."""
    return text.replace("|", "\\|")


def interval(low: float, high: float) -> str:
    """'[low, high]'."""
    return f"[{fmt(low)}, {fmt(high)}]"


def table(models: dict[str, dict[str, Any]], rows: list[Row]) -> str:
    """One column per model, one row per quantity."""
    names = list(models)
    lines = ["| | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {cell(label)} | " + " | ".join(cell(show(models[n])) for n in names) + " |" for label, show in rows]
    return "\n".join(lines)


def reconstruction_table(models: dict[str, dict[str, Any]]) -> str:
    """The three reconstructions and the Jensen gap, all from the reconstruction pass's images and draws."""
    return table(
        models,
        [
            ("log p(x|z = mu), the mean decode (nats)", lambda h: fmt(h["log_px_mu"])),
            ("E_q[log p(x|z)], a sampled decode (nats)", lambda h: fmt(h["e_log_px"])),
            ("log p(x|x_bar), the posterior predictive mean (nats)", lambda h: fmt(h["log_px_predictive"])),
            (
                "Jensen gap log p(x|z = mu) - E_q[log p(x|z)] (nats), 95% over test images",
                lambda h: f"{fmt(h['jensen_gap'])} {interval(h['jensen_gap_ci95_low'], h['jensen_gap_ci95_high'])}",
            ),
            ("  of which Monte-Carlo, 95% (± nats)", lambda h: fmt(1.96 * h["jensen_gap_mc_se"], 3)),
            ("images where the mean decode is better", lambda h: f"{h['share_mean_decode_better']:.0%}"),
            (
                "squared error, mean decode / sampled",
                lambda h: f"{fmt(h['se_mean_decode'], 3)} / {fmt(h['se_sampled'], 3)}",
            ),
        ],
    )


def density_table(models: dict[str, dict[str, Any]]) -> str:
    """NLL, its convergence, ELBO and KL, all from the density pass's images and draws, and the latents."""
    return table(
        models,
        [
            (
                "NLL estimate -L_K (nats), 95% over test images",
                lambda h: f"{fmt(h['nll'])} {interval(h['nll_ci95_low'], h['nll_ci95_high'])}",
            ),
            ("L_K rise from K/10 to K (nats)", lambda h: fmt(h["nll_last_decade_rise"], 3)),
            ("converged (rise < 0.1 nats)", lambda h: "yes" if h["nll_converged"] else "no: may still fall"),
            ("NLL estimate (bits/dim)", lambda h: fmt(h["nll_bits_per_dim"], 4)),
            ("ELBO (nats)", lambda h: fmt(h["elbo"])),
            ("KL(q(z|x) ‖ p(z)) (nats)", lambda h: fmt(h["kl"])),
            ("active units / latent dims", lambda h: f"{h['active_units']} / {h['latent_dim']}"),
            (
                "mean posterior std / mean ‖E_q[z]‖",
                lambda h: f"{fmt(h['mean_posterior_std'], 3)} / {fmt(h['code_norm'], 2)}",
            ),
        ],
    )


def seeds_table(seeds: dict[str, Any]) -> str:
    """Each headline quantity per training seed: size (mean, 95% t-interval) and direction (sign test)."""
    lines = [
        "| quantity | per seed | mean | 95% t-interval over seeds | sign test p |",
        "|---|---|---|---|---|",
    ]
    entries = [(f"`{n}` Jensen gap", s["jensen_gap"]) for n, s in seeds["models"].items()]
    entries += [(f"NLL estimate `{n}` - `vae`", c["nll_minus_vae"]) for n, c in seeds["comparisons"].items()]
    entries += [(f"log p(x|z = mu) `{n}` - `vae`", c["log_px_mu_minus_vae"]) for n, c in seeds["comparisons"].items()]
    for label, spread in entries:
        values = ", ".join(f"{v:+,.2f}" for v in spread["values"])
        low, high = spread["ci95_low"], spread["ci95_high"]
        shown = interval(low, high) if low is not None else "-"
        lines.append(f"| {cell(label)} | {values} | {fmt(spread['mean'])} | {shown} | {spread['sign_test_p']:.3f} |")
    return "\n".join(lines)
