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
    jensen_note,
    jensen_text,
    reconstruction_text,
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
        assert h["bce_diff_mean"] == written(h["bce_sampled"], -h["bce_mean_decode"])
        assert h["jensen_gap"] == written(h["log_px_mu"], -h["e_log_px"])
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


def model_numbers(diff: tuple[float, float], gap: float, collapsed: bool = False, bias: float = 0.0) -> dict:
    mean = (diff[0] + diff[1]) / 2
    return {
        "bce_diff_mean": mean,
        "bce_diff_ci95_low": diff[0],
        "bce_diff_ci95_high": diff[1],
        "bce_share_mean_decode_better": 0.9 if mean > 0 else 0.1,
        "jensen_gap": gap,
        "jensen_gap_se": 0.05,
        "collapsed": collapsed,
        "nll": 90.0,
        "nll_se": 0.3,
        "nll_remaining_bias": bias,
        "log_px_mu": -80.0,
        "kl": 5.0,
        "bce_mean_decode": 60.0,
    }


def numbers(
    recon=(1.0, 2.0),
    gap=1.5,
    nll=(4.0, 3.0, 5.0),
    bce_between=(-0.5, -0.7, -0.3),
    bias=0.0,
    seeds=None,
    collapsed=False,
) -> dict:
    """Metrics as the evaluate stage writes them, reduced to what the wording reads."""
    metrics = {
        "models": {"vae": model_numbers(recon, gap, collapsed), "plugin": model_numbers((40.0, 50.0), 30.0, bias=bias)},
        "comparisons": {
            "plugin": {
                "nll_minus_vae": nll[0],
                "nll_diff_ci95_low": nll[1],
                "nll_diff_ci95_high": nll[2],
                "bce_mean_decode_minus_vae": bce_between[0],
                "bce_diff_ci95_low": bce_between[1],
                "bce_diff_ci95_high": bce_between[2],
            }
        },
    }
    if seeds is not None:
        spread = lambda low, high: {"values": [low, high, (low + high) / 2], "ci95_low": low, "ci95_high": high}  # noqa: E731
        metrics["seeds"] = {
            "models": {"vae": {"bce_diff_mean": spread(*seeds), "jensen_gap": spread(1.0, 2.0)}},
            "comparisons": {"plugin": {"nll_minus_vae": spread(*seeds)}},
        }
    return metrics


def test_reconstruction_wording_follows_each_interval():
    def text(metrics):
        return reconstruction_text("vae", claims.reconstruction(metrics, "vae"), metrics["models"]["vae"])

    assert "decoding the mean reconstructs better" in text(numbers(recon=(1.0, 2.0)))
    assert "sampled decodes reconstruct better" in text(numbers(recon=(-2.0, -1.0)))
    assert "inconclusive" in text(numbers(recon=(-0.5, 0.5))) and "contains zero" in text(numbers(recon=(-0.5, 0.5)))
    # the Monte-Carlo interval excludes zero but another training seed could flip the sign
    across = text(numbers(recon=(1.0, 2.0), seeds=(-0.2, 3.0)))
    assert "inconclusive" in across and "across 3 training seeds" in across
    assert "decoding the mean reconstructs better" in text(numbers(recon=(1.0, 2.0), seeds=(0.5, 2.5)))


def test_an_nll_difference_below_the_estimators_remaining_bias_is_not_claimed():
    claimed = conclusion(numbers(nll=(4.0, 3.0, 5.0), bias=1.0))
    assert "4.00 nats lower test NLL" in claimed
    # the MNIST case: a 7.47-nat gap while the other model's L_K still rose 11.93 nats from K = 100 to 1000
    held_back = conclusion(numbers(nll=(7.47, 6.9, 8.0), bias=11.93))
    assert "lower test NLL" not in held_back and "inconclusive" in held_back and "remaining bias" in held_back
    reversed_text = conclusion(numbers(recon=(-2.0, -1.0), gap=-1.5, nll=(-4.0, -5.0, -3.0), collapsed=True))
    assert "reconstructs better than the mean decode" in reversed_text and "`plugin` has the lower NLL" in reversed_text
    assert "collapsed" in reversed_text
    quiet = numbers(recon=(-0.5, 0.5), gap=0.0, nll=(0.1, -0.2, 0.4))
    assert "inconclusive" in conclusion(quiet) and "lower test NLL" not in conclusion(quiet)


def test_jensen_is_stated_as_measured_and_small_reconstruction_gaps_are_not_ranked():
    metrics = numbers(gap=-1.5)
    assert "understates" in jensen_text("vae", claims.jensen(metrics, "vae"), metrics["models"]["vae"])
    assert "empirical result" in jensen_note() and "predicts" not in jensen_note()
    tiny = numbers(bce_between=(-0.08, -0.26, 0.10))  # the 0.08-nat "reconstructs best of all" with its interval
    text = between_text(
        "plugin", claims.nll_between(tiny, "plugin"), claims.reconstruction_between(tiny, "plugin"), tiny["models"]
    )
    assert "do not differ measurably" in text and "reconstructs better" not in text
    clear = numbers(bce_between=(-2.0, -2.5, -1.5))
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
    write_params(project, nll_images=10, study_images=8)
    evaluate(load_params("params.yaml"))
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert (metrics["images"], metrics["nll_images"], metrics["study_images"]) == (24, 10, 8)
    assert len((project / "reports/eval/nll_per_image.csv").read_text().splitlines()) == 11
    seeds = metrics["seeds"]
    vae = seeds["models"]["vae"]
    assert vae["seeds"] == [0, 1] and vae["nll"]["values"][0] == pytest.approx(metrics["models"]["vae"]["nll"])
    assert vae["nll"]["ci95_low"] < vae["nll"]["mean"] < vae["nll"]["ci95_high"]
    plugin = seeds["comparisons"]["plugin"]["nll_minus_vae"]
    assert plugin["values"][0] == pytest.approx(metrics["comparisons"]["plugin"]["nll_minus_vae"])
    report = (project / "reports/report.md").read_text()
    assert "## Across training seeds" in report and "Training seeds: 0, 1" in report
    assert "a fixed, seeded subset of 10 images" in report and "K study: 8 images" in report
