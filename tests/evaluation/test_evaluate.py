"""The evaluate stage end to end on tiny data: outputs, determinism, bad input, and report wording driven by numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import complete_params
from vaeops.cli import main
from vaeops.core.params import load_params
from vaeops.dataset.splits import manifest_sha256, write_prepared
from vaeops.evaluation import claims
from vaeops.evaluation.evaluate import evaluate
from vaeops.evaluation.report import (
    between_text,
    conclusion,
    gap_text,
    jensen_note,
)
from vaeops.model.checkpoint import save_checkpoint
from vaeops.model.devices import intra_op_threads
from vaeops.model.vae import VAE, ModelConfig

SIDE = 5
PARAMS = {
    "data": {"dataset": "digits", "out_dir": "data/prepared"},
    "train": {"out_dir": "models"},
    "evaluate": {
        "recon_samples": 4,
        "elbo_ks": [1, 4, 16],
        "elbo_repeats": 3,
        "nll_k": 32,
        "chunk_images": 8,
        "chunk_samples": 8,
        "plot_images": 4,
        "prior_samples": 8,
        "binarize": "static",
    },
}
FIGURES = {
    "reconstructions.png",
    "estimators_vs_k.png",
    "gaps.png",
    "prior_samples.png",
    "latent_2d.png",
    "why_sample.png",
}
MODELS = ("vae", "plugin", "autoencoder")


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    return gen.random((n, SIDE, SIDE)).astype(np.float32), gen.integers(0, 10, n)


def write_models(root: Path, data_sha: str) -> None:
    """Small untrained VAEs standing in for the three models (weights differ by seed)."""
    for seed, name in enumerate(MODELS):
        torch.manual_seed(seed)
        cfg = ModelConfig(SIDE * SIDE, (12,), 3)
        model = VAE(cfg)
        save_checkpoint(
            root / "models" / name / "best.pt",
            {
                "model_config": cfg.to_dict(),
                "model_state": model.state_dict(),
                "data_sha256": data_sha,
                "params": {},
                "epoch": 0,
            },
        )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_prepared(
        "data/prepared", {"train": split(30, 0), "val": split(10, 1), "test": split(24, 2)}, {"dataset": "digits"}
    )
    write_models(tmp_path, manifest_sha256("data/prepared"))
    write_params(tmp_path)
    return tmp_path


def write_params(root: Path, **evaluate_overrides) -> Path:
    raw = complete_params(json.loads(json.dumps(PARAMS)))
    raw["evaluate"].update(evaluate_overrides)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    reports = root / "reports"
    return {str(p.relative_to(reports)): p.read_bytes() for p in sorted(reports.rglob("*")) if p.is_file()}


def rendered_tables(markdown_text: str) -> list[list[list[str]]]:
    """The cells of every table as the page renders the report (python-markdown, tables extension)."""
    from html.parser import HTMLParser

    import markdown

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.tables[-1][-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(markdown.markdown(markdown_text, extensions=["tables"]))
    return parser.tables


def written(*terms: float):
    """The sum of numbers each written with 6 significant digits: equal up to the rounding of the largest term."""
    return pytest.approx(sum(terms), rel=1e-5, abs=1e-5 * max(abs(t) for t in terms))


def test_evaluate_writes_every_output_and_repeats_exactly(project: Path):
    summary = evaluate(load_params("params.yaml"))
    assert set(summary["models"]) == set(MODELS)
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["images"] == 24 and metrics["pixels"] == SIDE * SIDE and metrics["binarize"] == "static"
    for name in MODELS:
        h = metrics["models"][name]
        assert h["nll"] > 0 and np.isfinite(h["nll_bits_per_dim"])
        assert -h["nll"] >= h["elbo"] - 1.0  # L_32 sits above the ELBO up to Monte-Carlo noise
        assert h["jensen_gap"] == written(h["log_px_mu"], -h["e_log_px"])
        assert h["log_px_predictive"] >= h["e_log_px"] - 1e-4  # concave in the pixel means
        assert h["jensen_gap_ci95_low"] < h["jensen_gap"] < h["jensen_gap_ci95_high"] and h["jensen_gap_mc_se"] > 0
        assert 0 <= h["active_units"] <= h["latent_dim"] == 3
    assert set(metrics["comparisons"]) == {"plugin", "autoencoder"} and metrics["seeds"] is None
    assert metrics["comparisons"]["plugin"]["nll_minus_vae"] == written(
        metrics["models"]["plugin"]["nll"], -metrics["models"]["vae"]["nll"]
    )
    headline_file = json.loads((project / "reports/headline.json").read_text())
    assert headline_file == {
        "nll": {name: round(metrics["models"][name]["nll"], 2) for name in MODELS},
        "gap": {"vae": round(metrics["models"]["vae"]["jensen_gap"], 2)},
    }
    assert {p.name for p in (project / "reports/plots").iterdir()} == FIGURES
    per_image = (project / "reports/eval/per_image.csv").read_text().splitlines()
    assert len(per_image) == 25 and "vae_jensen_gap" in per_image[0] and "plugin_bce_sampled" in per_image[0]
    estimators = (project / "reports/eval/estimators.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in estimators[1:]] == ["1", "4", "16"]
    report = (project / "reports/report.md").read_text()
    assert f"{metrics['models']['vae']['nll']:,.2f}" in report  # numbers in the text come from the metrics
    tables = rendered_tables(report)
    assert len(tables) == 2 and all(len(row) == len(rows[0]) for rows in tables for row in rows)
    assert tables[0][0] == ["", "vae", "plugin", "autoencoder"] and tables[0][2][0].startswith("E_q[log p(x|z)]")
    assert tables[0][2][1] == f"{metrics['models']['vae']['e_log_px']:,.2f}"  # under its model, not shifted
    assert all(f"plots/{figure}" in report for figure in FIGURES)

    first = snapshot(project)
    # another thread count, as an earlier stage of the same process may leave it
    with intra_op_threads(1 if torch.get_num_threads() > 1 else 2):
        evaluate(load_params("params.yaml"))
    assert snapshot(project) == first  # same seed: byte-identical metrics, tables, figures and report


def test_cli_evaluate_succeeds(project: Path, capsys: pytest.CaptureFixture):
    assert main(["evaluate", "--params", "params.yaml", "-S", "evaluate.nll_k=8"]) == 0
    assert json.loads((project / "reports/metrics.json").read_text())["nll_k"] == 8
    assert '"models"' in capsys.readouterr().out


def run_failing(capsys: pytest.CaptureFixture) -> str:
    code = main(["evaluate", "--params", "params.yaml"])
    err = capsys.readouterr().err
    assert code != 0, err
    return err


def test_missing_checkpoint_is_a_clear_error_and_keeps_old_outputs(project: Path, capsys: pytest.CaptureFixture):
    evaluate(load_params("params.yaml"))
    before = snapshot(project)
    (project / "models/plugin/best.pt").unlink()
    assert "checkpoint not found: models/plugin/best.pt" in run_failing(capsys)
    assert snapshot(project) == before


def test_checkpoint_from_other_data_is_refused(project: Path, capsys: pytest.CaptureFixture):
    write_models(project, "0" * 64)
    assert "was trained on data 000000000000" in run_failing(capsys)
    assert not (project / "reports/metrics.json").exists()


@pytest.mark.parametrize("override", [{"nll_k": 0}, {"elbo_ks": [1, 0]}, {"recon_samples": 0}, {"binarize": "dynamic"}])
def test_bad_evaluate_params_exit_non_zero(project: Path, capsys: pytest.CaptureFixture, override: dict):
    write_params(project, **override)
    assert "evaluate." in run_failing(capsys)
    assert not (project / "reports").exists()


def test_bf16_without_native_bf16_matmuls_is_a_params_error_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, check, lambda: False, raising=False)
    write_params(project, precision="bf16")
    assert "precision bf16 needs native bf16 matmuls" in run_failing(capsys)
    assert not (project / "reports").exists()


def test_empty_split_is_a_data_error(project: Path, capsys: pytest.CaptureFixture):
    empty = (np.zeros((0, SIDE, SIDE), np.float32), np.zeros(0, np.int64))
    write_prepared("data/prepared", {"train": split(30, 0), "val": split(10, 1), "test": empty}, {"dataset": "digits"})
    write_models(project, manifest_sha256("data/prepared"))
    assert "test.npz holds no images" in run_failing(capsys)


def model_numbers(gap: tuple[float, float], collapsed: bool = False, rise: float = 0.0) -> dict:
    mean = (gap[0] + gap[1]) / 2
    return {
        "jensen_gap": mean,
        "jensen_gap_ci95_low": gap[0],
        "jensen_gap_ci95_high": gap[1],
        "jensen_gap_mc_se": 0.01,
        "share_mean_decode_better": 0.9 if mean > 0 else 0.1,
        "collapsed": collapsed,
        "nll": 90.0,
        "nll_last_decade_rise": rise,
        "nll_converged": rise < claims.CONVERGED_RISE,
        "log_px_mu": -80.0,
        "e_log_px": -80.0 - mean,
        "log_px_predictive": -79.0,
        "kl": 5.0,
    }


def numbers(
    gap=(1.0, 2.0),
    nll=(4.0, 3.0, 5.0),
    recon_between=(0.5, 0.3, 0.7),
    vae_rise=0.0,
    plugin_rise=0.0,
    seeds=None,
    collapsed=False,
) -> dict:
    """Metrics as the evaluate stage writes them, reduced to what the wording reads."""
    metrics = {
        "models": {
            "vae": model_numbers(gap, collapsed, vae_rise),
            "plugin": model_numbers((40.0, 50.0), rise=plugin_rise),
        },
        "comparisons": {
            "plugin": {
                "nll_minus_vae": nll[0],
                "nll_diff_ci95_low": nll[1],
                "nll_diff_ci95_high": nll[2],
                "log_px_mu_minus_vae": recon_between[0],
                "log_px_mu_diff_ci95_low": recon_between[1],
                "log_px_mu_diff_ci95_high": recon_between[2],
            }
        },
    }
    if seeds is not None:
        spread = {
            "values": list(seeds),
            "ci95_low": min(seeds),
            "ci95_high": max(seeds),
            "sign_test_p": claims.sign_test(seeds),
        }
        metrics["seeds"] = {
            "models": {"vae": {"jensen_gap": spread}},
            "comparisons": {"plugin": {"nll_minus_vae": spread, "log_px_mu_minus_vae": spread}},
        }
    return metrics


def test_the_sign_test_is_exact_and_six_agreeing_seeds_reach_five_percent():
    assert claims.sign_test([1.0] * 6) == pytest.approx(2 / 64)
    assert claims.sign_test([1.0] * 5) == pytest.approx(2 / 32)  # five seeds can never reach 5%
    assert claims.sign_test([1.0] * 5 + [-1.0]) == pytest.approx(2 * 7 / 64)
    assert claims.sign_test([0.0, 0.0]) == 1.0


def test_a_direction_needs_the_image_interval_and_the_sign_test_over_seeds():
    def text(metrics):
        return gap_text("vae", claims.jensen(metrics, "vae"), metrics["models"]["vae"])

    assert "the mean decode has the higher log-likelihood" in text(numbers(gap=(1.0, 2.0)))
    assert "a sampled decode has the higher log-likelihood" in text(numbers(gap=(-2.0, -1.0)))
    assert "inconclusive" in text(numbers(gap=(-0.5, 0.5))) and "contains zero" in text(numbers(gap=(-0.5, 0.5)))
    # the MNIST autoencoder's case: every seed and every image the same way, a t-interval wide enough to hold 0
    six = (58.9, 18.1, 57.1, 40.0, 35.2, 61.0)
    established = text(numbers(gap=(1.0, 2.0), seeds=six))
    assert "the mean decode has the higher log-likelihood" in established and "sign test p = 0.031" in established
    for held_back in ((58.9, 18.1, 57.1), (1.0, 2.0, 3.0, 4.0, 5.0, -0.5)):  # three seeds; five of six
        worded = text(numbers(gap=(1.0, 2.0), seeds=held_back))
        assert "inconclusive" in worded and "does not establish the direction" in worded


def test_the_nll_rule_needs_the_higher_estimate_converged():
    claimed = conclusion(numbers(nll=(4.0, 3.0, 5.0)))
    assert "4.00 nats lower test NLL" in claimed and "at least" not in claimed
    # the digits case: `plugin`'s L_K still rose 2.24 nats from K = 100 to 1000: its NLL may be lower than shown
    held_back = conclusion(numbers(nll=(5.43, 5.15, 5.71), plugin_rise=2.24))
    assert "lower test NLL" not in held_back and "not claimed" in held_back and "may be lower than shown" in held_back
    # the lower estimate not converged: the true difference is larger still, so it is claimed as a lower bound
    lower_open = conclusion(numbers(nll=(4.0, 3.0, 5.0), vae_rise=1.5))
    assert "at least 4.00 nats lower test NLL" in lower_open
    reversed_text = conclusion(numbers(gap=(-2.0, -1.0), nll=(-4.0, -5.0, -3.0), collapsed=True))
    assert "a sampled decode has the higher log-likelihood" in reversed_text
    assert "`plugin` has the lower NLL" in reversed_text and "collapsed" in reversed_text
    quiet = numbers(gap=(-0.5, 0.5), nll=(0.1, -0.2, 0.4))
    assert "not claimed" in conclusion(quiet) and "lower test NLL" not in conclusion(quiet)


def test_the_gap_is_stated_as_measured_and_small_reconstruction_gaps_are_not_ranked():
    assert "empirical result" in jensen_note() and "predicts" not in jensen_note()
    untrained = numbers(gap=(1.0, 2.0))
    said = gap_text("autoencoder", claims.jensen(untrained, "vae"), untrained["models"]["vae"], untrained_variance=True)
    assert "untrained q(z|x)" in said and "not sampling" in said
    tiny = numbers(recon_between=(0.08, -0.10, 0.26))
    text = between_text(
        "plugin", claims.nll_between(tiny, "plugin"), claims.reconstruction_between(tiny, "plugin"), tiny["models"]
    )
    assert "do not differ measurably" in text and "reconstructs better" not in text
    clear = numbers(recon_between=(2.0, 1.5, 2.5))
    assert "`plugin` reconstructs better from its mean" in between_text(
        "plugin", claims.nll_between(clear, "plugin"), claims.reconstruction_between(clear, "plugin"), clear["models"]
    )


def test_subsets_and_training_seeds_are_measured_and_reported(project: Path):
    import shutil

    for offset, name in enumerate(MODELS):
        folder = project / "models" / name / "replicates"
        (folder / "seed-0").mkdir(parents=True)
        shutil.copy(project / "models" / name / "best.pt", folder / "seed-0" / "best.pt")  # seed 0 was selected
        torch.manual_seed(10 + offset)
        cfg = ModelConfig(SIDE * SIDE, (12,), 3)
        save_checkpoint(
            folder / "seed-1" / "best.pt",
            {
                "model_config": cfg.to_dict(),
                "model_state": VAE(cfg).state_dict(),
                "data_sha256": manifest_sha256("data/prepared"),
                "params": {},
                "epoch": 0,
            },
        )
    write_params(project, nll_images=10)
    evaluate(load_params("params.yaml"))
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert (metrics["images"], metrics["nll_images"]) == (24, 10)
    assert len((project / "reports/eval/nll_per_image.csv").read_text().splitlines()) == 11
    seeds = metrics["seeds"]
    vae = seeds["models"]["vae"]
    assert vae["seeds"] == [0, 1] and vae["nll"]["values"][0] == pytest.approx(metrics["models"]["vae"]["nll"])
    assert vae["nll"]["ci95_low"] < vae["nll"]["mean"] < vae["nll"]["ci95_high"]
    plugin = seeds["comparisons"]["plugin"]["nll_minus_vae"]
    assert plugin["values"][0] == pytest.approx(metrics["comparisons"]["plugin"]["nll_minus_vae"])
    report = (project / "reports/report.md").read_text()
    assert "## Across training seeds" in report and "Training seeds: 0, 1" in report
    assert "a fixed, seeded subset of 10 images" in report


def test_the_api_gives_the_reports_numbers_for_the_same_images_and_draws(project: Path):
    """The served ONNX model over HTTP, sent the evaluation's own images and noise, reproduces the report's per-image
    log p(x|z = mu), E_q[log p(x|z)] and log p(x|x_bar) (reports/eval/per_image.csv)."""
    import csv

    import httpx

    from onnx_helpers import Server
    from vaeops.evaluation.evaluate import load_test_images
    from vaeops.export.export import export
    from vaeops.model.estimators import chunk_generator

    params = load_params("params.yaml")
    evaluate(params)
    export(params)
    cfg = params.evaluate
    x = load_test_images(params)[0][: cfg.chunk_images].numpy()  # the first chunk of the reconstruction pass
    # the evaluation's draws for that chunk: stream 1, chunk 0 (vaeops.model.estimators.reconstruction_errors)
    generator = chunk_generator(cfg.seed, 1, 0, torch.device("cpu"))
    eps = torch.randn((cfg.recon_samples, len(x), 3), generator=generator).numpy()
    with open(project / "reports/eval/per_image.csv") as handle:
        report = list(csv.DictReader(handle))[: len(x)]

    def log_likelihood(p: np.ndarray) -> np.ndarray:
        p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
        return (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(-1)

    server = Server(["--params", "params.yaml", "-S", "serve.port=0", "-S", "serve.model_dir=models/onnx"])
    try:
        with httpx.Client(base_url=server.url(), timeout=30) as client:

            def infer(graph: str, **inputs: np.ndarray) -> np.ndarray:
                body = {
                    "inputs": [
                        {"name": k, "shape": list(v.shape), "datatype": "FP32", "data": v.ravel().tolist()}
                        for k, v in inputs.items()
                    ]
                }
                out = client.post(f"/v2/models/{graph}/infer", json=body).json()["outputs"][0]
                return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

            mean_decode = np.asarray(client.post("/reconstruct", json={"images": x.tolist()}).json()["images"])
            sampled = np.stack([infer("reconstruct", x=x, eps=eps[s]) for s in range(cfg.recon_samples)])
    finally:
        server.stop()
    for key, api in (
        ("log_px_mu", log_likelihood(mean_decode.reshape(len(x), -1))),
        ("e_log_px", np.mean([log_likelihood(p) for p in sampled], axis=0)),
        ("log_px_predictive", log_likelihood(sampled.mean(0))),
    ):
        np.testing.assert_allclose(api, [float(row[f"vae_{key}"]) for row in report], rtol=1e-4, atol=1e-4)
