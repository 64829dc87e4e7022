"""The train stage on the digits data: it learns, it is reproducible bit for bit, it resumes, it fails cleanly."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from vaeops import cli
from vaeops.core.errors import DataError, ParamsError, TrainingDiverged
from vaeops.core.fileio import sha256_file
from vaeops.core.params import MODEL_ACTIVATIONS, MODEL_LIKELIHOODS, load_params
from vaeops.dataset.splits import manifest_sha256, write_prepared
from vaeops.model import vae as model
from vaeops.model.binarize import binarize_fresh, binarize_static
from vaeops.model.checkpoint import load_checkpoint, load_model
from vaeops.model.devices import (
    configure,
    derive_seed,
    flush_denormals,
    generator,
    retain_freed_memory,
)
from vaeops.training.ddp import weights_digest
from vaeops.training.progress import BackgroundLive
from vaeops.training.train import model_config, train
from vaeops.training.trainer import Objective, kl_beta, validation_sums

SMALL = {
    "model.hidden": [32],
    "model.latent_dim": 4,
    "train.epochs": 2,
    "train.batch_size": 64,
    "train.threads": 1,
    "train.replicates": 1,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The sklearn digits (8x8, grey levels in [0, 1]) split 1200 / 300 / 297, written in the prepared format."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)
    out = tmp_path_factory.mktemp("prepared")
    parts = {"train": slice(0, 1200), "val": slice(1200, 1500), "test": slice(1500, None)}
    write_prepared(out, {name: (images[s], labels[s]) for name, s in parts.items()}, {"dataset": "digits"})
    return out


@pytest.fixture
def params_for(project, prepared):
    """Build checked Params from the repo's params.yaml with small-model overrides (outputs land in the tmp project)."""

    def build(**changes):
        overrides = {"data.out_dir": str(prepared), **SMALL}
        overrides.update({key.replace("__", "."): value for key, value in changes.items()})
        return load_params(project / "params.yaml", overrides=overrides)

    return build


def test_model_names_in_params_match_the_model():
    assert set(MODEL_ACTIVATIONS) == set(model.ACTIVATIONS)
    assert set(MODEL_LIKELIHOODS) == set(model.LIKELIHOODS)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"model.hidden": [64, -1]}, "model.hidden[1]"),
        ({"model.latent_dim": 0}, "model.latent_dim"),
        ({"model.likelihood": "poisson"}, "model.likelihood"),
        ({"model.activation": "swish"}, "model.activation"),
        ({"train.samples": 0}, "train.samples"),
        ({"train.device": "tpu"}, "train.device"),
        ({"train.objective": "vae"}, "train.objective"),
        ({"train.batch_size": -8}, "train.batch_size"),
        ({"train.variant": "plugin", "train.objective": "iwae"}, "iwae"),
        ({"train.spread_samples": 1}, "train.spread_samples"),
        ({"train.lr": 0}, "train.lr"),
        ({"train.adam_beta2": 1.0}, "train.adam_beta2"),
        ({"train.adam_beta1": -0.1}, "train.adam_beta1"),
        ({"train.batch_size_schedule": [64, 0]}, "train.batch_size_schedule[1]"),
    ],
)
def test_bad_params_are_refused_before_any_work(project, changes, fragment):
    with pytest.raises(ParamsError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_params(project / "params.yaml", overrides=changes)
    assert not (project / "models").exists()


def test_unavailable_device_is_refused_before_any_work(params_for, project):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ParamsError, match="CUDA is not available"):
        train(params_for(train__device="cuda"))
    assert not (project / "models").exists()


def test_cli_prints_a_message_and_exits_non_zero_on_bad_params(project, capsys):
    (project / "params.yaml").write_text(
        (project / "params.yaml").read_text().replace("  samples: 1 ", "  samples: 0 ")
    )
    assert cli.main(["train", "--params", str(project / "params.yaml")]) == 2
    assert "train.samples: Input should be greater than or equal to 1, got 0" in capsys.readouterr().err


def test_one_epoch_on_digits_lowers_the_loss(params_for, prepared, project):
    params = params_for(train__epochs=1)
    hardware = configure("cpu", "fp32", True)
    torch.manual_seed(params.train.seed)
    untrained = Objective(model.VAE(model_config(params, 64)))
    x_val = torch.from_numpy(np.load(prepared / "val.npz")["images"].reshape(-1, 64))
    before = validation_sums(untrained, x_val, 1024, hardware, generator(hardware.device, 0), 0)[0].item() / len(x_val)
    summary = train(params)
    assert summary["final"]["val/loss"] < before - 1  # nats per image: a clear drop, well above the noise
    assert summary["final"]["train/loss"] == pytest.approx(
        -(summary["final"]["train/recon"] - summary["final"]["train/kl"]), rel=1e-5
    )
    assert (project / "models" / "vae" / "best.pt").exists() and (project / "models" / "vae" / "train.json").exists()
    assert (project / "reports" / "train" / "vae" / "plots" / "metrics" / "val" / "loss.tsv").exists()


def test_checkpoint_has_what_resume_and_the_later_stages_need(params_for, prepared, project):
    train(params_for())
    state = load_checkpoint(project / "models" / "vae" / "last.pt")
    for key in (
        "model_config",
        "model_state",
        "optimizer_state",
        "scheduler_state",
        "epoch",
        "params",
        "data_sha256",
        "rng_state",
    ):
        assert key in state
    assert state["epoch"] == 2 and state["data_sha256"] == manifest_sha256(prepared)
    vae, _ = load_model(project / "models" / "vae" / "best.pt", expected_data_sha256=manifest_sha256(prepared))
    assert vae.config.input_dim == 64 and vae.config.hidden == (32,)


def test_plugin_variant_trains_and_is_saved_like_any_other_model(params_for, project):
    summary = train(params_for(train__epochs=3, train__variant="plugin"))
    history = load_checkpoint(project / "models" / "plugin" / "last.pt")["run"]["history"]
    assert history[-1]["val/loss"] < history[0]["val/loss"]
    assert "val/mc_std" not in history[-1]  # nothing is sampled, so there is no Monte-Carlo spread
    assert summary["variant"] == "plugin" and (project / "models" / "plugin" / "best.pt").exists()


def test_the_autoencoder_has_no_kl_term_and_its_variance_gets_no_gradient(params_for, project):
    summary = train(params_for(train__variant="autoencoder"))
    assert summary["latent"] == "mean" and summary["kl_term"] is False
    record = summary["final"]
    assert record["beta"] == 0.0 and record["val/loss"] == pytest.approx(
        -record["val/recon"]
    )  # the loss is -log p(x|mu)
    trained, _ = load_model(project / "models" / "autoencoder" / "best.pt")
    torch.manual_seed(0)
    fresh = model.VAE(trained.config)
    # the log-variance head never enters the loss, so it keeps its initial weights
    latent = trained.config.latent_dim
    assert torch.equal(trained.encoder_head.weight[latent:], fresh.encoder_head.weight[latent:])
    assert not torch.equal(trained.encoder_head.weight[:latent], fresh.encoder_head.weight[:latent])


def test_replicates_train_one_model_per_seed_and_the_best_on_validation_is_kept(params_for, project):
    summary = train(params_for(train__replicates=2, train__epochs=1))
    folder = project / "models" / "vae"
    choice = (folder / "replicates.json").read_text()
    assert summary["selected_seed"] in (0, 1) and "lowest validation loss" in choice
    losses = {run["seed"]: run["best_val_loss"] for run in summary["replicates"]}
    assert summary["selected_seed"] == min(losses, key=losses.get)
    seeds = {seed: sha256_file(folder / "replicates" / f"seed-{seed}" / "best.pt") for seed in (0, 1)}
    assert seeds[0] != seeds[1] and sha256_file(folder / "best.pt") == seeds[summary["selected_seed"]]
    train(params_for(train__epochs=1))  # back to one seed: no stale replicates left for evaluate
    assert not (folder / "replicates").exists()


def test_two_runs_with_one_seed_give_identical_weights_and_another_seed_does_not(params_for, project):
    changes = {"train__samples": 2, "train__binarize": "dynamic", "train__out_dir": "a"}
    # every file the stage writes is a DVC output, so equal params must give equal bytes
    digests = lambda: {n: sha256_file(project / "a" / "vae" / n) for n in ("best.pt", "last.pt", "train.json")}  # noqa: E731
    first = train(params_for(**changes))
    first_files = digests()
    second = train(params_for(**changes))
    third = train(params_for(**{**changes, "train__out_dir": "c"}, train__seed=1))
    assert first["weights_sha256"] == second["weights_sha256"] != third["weights_sha256"]
    assert first["final"] == second["final"]
    assert digests() == first_files


@pytest.mark.parametrize("schedule", ["step", "plateau"])
def test_a_resumed_run_matches_an_uninterrupted_one_bitwise(params_for, project, schedule):
    changes = {
        "train__lr_schedule": schedule,
        "train__lr_step_epochs": 1,
        "train__lr_patience": 0,
        "train__kl_warmup_epochs": 3,
        "train__binarize": "dynamic",
        "train__samples": 2,
        "train__batch_size_schedule": [32, 64, 128],
        "train__adam_beta1": 0.7,
    }
    whole = train(params_for(**changes, train__epochs=4, train__out_dir="whole"))
    train(params_for(**changes, train__epochs=2, train__out_dir="split"))
    # A kill while dvclive rewrote its summary leaves it empty: the resume must not depend on it.
    (project / "reports" / "train" / "vae" / "metrics.json").write_text("")
    resumed = train(params_for(**changes, train__epochs=4, train__out_dir="split"), resume=True)
    assert resumed["weights_sha256"] == whole["weights_sha256"]
    history = lambda out: load_checkpoint(project / out / "vae" / "last.pt")["run"]["history"]  # noqa: E731
    assert history("split") == history("whole")
    # 1200 training images in batches of 32, 64, 128, 128 (the schedule's last entry repeats): 38 + 19 + 10 + 10 steps
    optimizer_state = load_checkpoint(project / "whole" / "vae" / "last.pt")["optimizer_state"]
    assert {int(s["step"]) for s in optimizer_state["state"].values()} == {77}
    assert optimizer_state["param_groups"][0]["betas"] == (0.7, 0.999)
    assert [r["beta"] for r in history("whole")] == [kl_beta(e, 3) for e in range(4)] == [1 / 3, 2 / 3, 1.0, 1.0]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(params_for, project):
    train(params_for())
    last = project / "models" / "vae" / "last.pt"
    best = project / "models" / "vae" / "best.pt"
    before = (sha256_file(last), sha256_file(best))
    with pytest.raises(TrainingDiverged, match="epoch 3.*last good checkpoint"):
        train(params_for(train__epochs=4, train__lr=1e12), resume=True)
    assert (sha256_file(last), sha256_file(best)) == before
    assert load_checkpoint(last)["epoch"] == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"train__objective": "iwae", "train__samples": 4},
        {"train__kl": "mc", "train__samples": 3, "train__binarize": "static"},
        {"model__likelihood": "gaussian", "model__activation": "tanh", "train__samples": 2},
        {"model__hidden": [16, 16], "train__grad_clip": 1.0, "train__lr_schedule": "cosine", "train__samples": 2},
    ],
    ids=["iwae", "mc-kl-static-binarized", "gaussian-tanh", "two-layers-clipped-cosine"],
)
def test_objective_and_model_variants_train(params_for, changes):
    summary = train(params_for(**changes, train__epochs=3))
    history = load_checkpoint(Path(summary["last"]))["run"]["history"]
    assert np.isfinite(summary["best_val_loss"]) and history[-1]["val/loss"] < history[0]["val/loss"]
    assert summary["final"]["train/mc_std"] > 0  # K >= 2 draws per image: their spread is measured
    if changes.get("train__lr_schedule") == "cosine":  # the rate each epoch ran with: cosine over 3 epochs
        assert [r["lr"] for r in history] == pytest.approx([1e-3 * 0.5 * (1 + np.cos(np.pi * e / 3)) for e in range(3)])


def test_early_stopping_keeps_the_best_epoch(params_for, project):
    summary = train(params_for(train__epochs=30, train__lr=0.05, train__early_stopping_patience=2))
    assert summary["stopped_early"] and summary["epochs_run"] == summary["best_epoch"] + 2
    assert load_checkpoint(project / "models" / "vae" / "best.pt")["epoch"] == summary["best_epoch"]
    assert load_checkpoint(project / "models" / "vae" / "last.pt")["epoch"] == summary["epochs_run"]


def test_an_improving_last_epoch_writes_the_same_bytes_to_best_and_last(params_for, project):
    summary = train(params_for(train__epochs=2))
    assert summary["best_epoch"] == 2
    folder = project / "models" / "vae"
    assert (folder / "best.pt").read_bytes() == (folder / "last.pt").read_bytes()


def test_binarization_static_is_fixed_and_dynamic_is_fresh():
    x = torch.rand(50, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(binarize_static(x, 3), binarize_static(x, 3))
    g = torch.Generator().manual_seed(0)
    first, second = binarize_fresh(x, g), binarize_fresh(x, g)
    assert not torch.equal(first, second) and set(first.unique().tolist()) <= {0.0, 1.0}
    # A Bernoulli draw keeps the grey level as its mean.
    many = torch.stack([binarize_fresh(x, g) for _ in range(2000)]).mean(0)
    assert (many - x).abs().max() < 0.06


def test_training_leaves_the_thread_count_and_matmul_precision_as_it_found_them(params_for):
    before = torch.get_num_threads(), torch.get_float32_matmul_precision()
    summary = train(
        params_for(train__epochs=1, train__threads=1 if before[0] > 1 else 2, train__matmul_precision="medium")
    )
    assert summary["threads"] != before[0] and summary["matmul_precision"] == "medium"  # used inside the stage
    assert (torch.get_num_threads(), torch.get_float32_matmul_precision()) == before


def test_dvclive_opened_in_the_background_logs_and_reports_its_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dvclive looks for a DVC repo from the working folder: not the checkout's
    live = BackgroundLive(tmp_path / "live", resume=False).get()
    live.log_metric("loss", 1.5)
    live.next_step()
    assert (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()[1].endswith("1.5")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OSError):
        BackgroundLive(tmp_path / "a-file", resume=False).get()


def test_subnormals_are_flushed_only_inside_training():
    subnormal = torch.tensor([1e-40])
    with flush_denormals():
        flushed = (subnormal * 1.0).item()
    assert flushed == 0.0
    assert (subnormal * 1.0).item() == pytest.approx(1e-40)


def test_the_allocator_keeps_freed_memory_on_glibc():
    assert retain_freed_memory() is (platform.libc_ver()[0] == "glibc")


def test_derived_seeds_are_stable_distinct_and_fit_a_torch_generator():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)  # the same keys, the same stream: resume needs no RNG state
    seeds = {derive_seed(seed, stream, epoch) for seed in range(3) for stream in range(3) for epoch in range(20)}
    assert len(seeds) == 180 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, 1, 2) != derive_seed(0, 2, 1)  # key order matters


def test_weights_digest_sees_a_one_bit_change():
    torch.manual_seed(0)
    vae = model.VAE(model.ModelConfig(4, (3,), 2))
    before = weights_digest(vae)
    with torch.no_grad():
        vae.decoder_head.bias[0] = torch.nextafter(vae.decoder_head.bias[0], torch.tensor(1.0))
    assert weights_digest(vae) != before


def test_pixels_outside_the_unit_interval_are_refused_for_a_bernoulli_model(params_for, prepared, tmp_path, project):
    images = np.load(prepared / "train.npz")["images"] * 2.0
    bad = tmp_path / "bad"
    write_prepared(bad, {name: (images, np.zeros(len(images), np.int64)) for name in ("train", "val", "test")}, {})
    with pytest.raises(DataError, match="outside \\[0, 1\\]"):
        train(params_for(data__out_dir=str(bad)))
    assert not (project / "models").exists()
