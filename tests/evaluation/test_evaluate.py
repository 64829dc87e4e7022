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
from vaeops.data.splits import manifest_sha256, write_prepared
from vaeops.evaluation.evaluate import evaluate
from vaeops.evaluation.report import conclusion, reconstruction_text
from vaeops.training.checkpoint import save_checkpoint
from vaeops.training.devices import intra_op_threads
from vaeops.training.model import VAE, ModelConfig

SIDE = 5
PARAMS = {
    "data": {"dataset": "digits", "out_dir": "data/prepared"},
    "train": {"out_dir": "models"},
    "evaluate": {"recon_samples": 4, "elbo_ks": [1, 4, 16], "elbo_repeats": 3, "nll_k": 32, "chunk_images": 8,
                 "chunk_samples": 8, "plot_images": 4, "prior_samples": 8, "binarize": "static"},
}
FIGURES = {"reconstructions.png", "estimators_vs_k.png", "gaps.png", "prior_samples.png", "latent_2d.png"}


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    return gen.random((n, SIDE, SIDE)).astype(np.float32), gen.integers(0, 10, n)


def write_models(root: Path, data_sha: str) -> None:
    """Two small untrained VAEs standing in for the sample and mean models (weights differ by seed)."""
    for seed, name in enumerate(("vae", "plugin")):
        torch.manual_seed(seed)
        cfg = ModelConfig(SIDE * SIDE, (12,), 3)
        model = VAE(cfg)
        save_checkpoint(root / "models" / name / "best.pt", {
            "model_config": cfg.to_dict(), "model_state": model.state_dict(), "data_sha256": data_sha,
            "params": {}, "epoch": 0})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_prepared("data/prepared", {"train": split(30, 0), "val": split(10, 1), "test": split(24, 2)}, {"dataset": "digits"})
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


def test_evaluate_writes_every_output_and_repeats_exactly(project: Path):
    summary = evaluate(load_params("params.yaml"))
    assert set(summary["models"]) == {"vae", "plugin"}
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["images"] == 24 and metrics["pixels"] == SIDE * SIDE and metrics["binarize"] == "static"
    for name in ("vae", "plugin"):
        h = metrics["models"][name]
        assert h["nll"] > 0 and np.isfinite(h["nll_bits_per_dim"])
        assert -h["nll"] >= h["elbo"] - 1.0  # L_32 sits above the ELBO up to Monte-Carlo noise
        assert h["bce_diff_mean"] == pytest.approx(h["bce_sampled"] - h["bce_mean_decode"])
        assert h["jensen_gap"] == pytest.approx(h["log_px_mu"] - h["e_log_px"])
        assert 0 <= h["active_units"] <= h["latent_dim"] == 3
    assert "nll_plugin_minus_vae" in metrics["comparison"]
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
    assert main(["evaluate", "--params", "params.yaml", "--nll-k", "8"]) == 0
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
        project: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
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


def headline(diff: tuple[float, float], gap: float, collapsed: bool = False) -> dict:
    mean = (diff[0] + diff[1]) / 2
    return {"bce_diff_mean": mean, "bce_diff_ci95_low": diff[0], "bce_diff_ci95_high": diff[1],
            "bce_share_mean_decode_better": 0.9 if mean > 0 else 0.1, "jensen_gap": gap, "jensen_gap_se": 0.05,
            "collapsed": collapsed, "nll": 90.0, "nll_se": 0.3}


def test_report_wording_follows_the_numbers():
    better_mean = reconstruction_text("vae", headline((1.0, 2.0), 1.5))
    better_sampled = reconstruction_text("vae", headline((-2.0, -1.0), -1.5))
    unclear = reconstruction_text("vae", headline((-0.5, 0.5), 0.0))
    assert "decoding the mean reconstructs better" in better_mean
    assert "sampled decodes reconstruct better" in better_sampled
    assert "no measurable difference" in unclear
    comparison = {"nll_plugin_minus_vae": 4.0, "nll_diff_ci95_low": 3.0, "nll_diff_ci95_high": 5.0}
    text = conclusion({"vae": headline((1.0, 2.0), 1.5)}, comparison)
    assert "not for sharper reconstructions" in text and "4.00 nats lower test NLL" in text
    reversed_text = conclusion({"vae": headline((-2.0, -1.0), -1.5, collapsed=True)},
                               {"nll_plugin_minus_vae": -4.0, "nll_diff_ci95_low": -5.0, "nll_diff_ci95_high": -3.0})
    assert "even reconstructs better" in reversed_text and "`plugin` model has the lower NLL" in reversed_text
    assert "collapsed" in reversed_text
    assert "None of the effects" in conclusion({"vae": headline((-0.5, 0.5), 0.0)}, None)
