"""The onnxruntime inference library: results against the PyTorch model, input validation, tamper detection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from onnx_helpers import IMAGE_SHAPE, make_project
from vaeops.core.errors import BatchTooLarge, InputError, ModelFileError, ParamsError
from vaeops.export.export import export
from vaeops.serving.inference import CPU_PROVIDER, OnnxVAE, choose_providers, load

D = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    params, model = make_project(root)
    export(params)
    return root / "models" / "onnx", model


@pytest.fixture(scope="module")
def vae(exported):
    return load(exported[0], max_batch=16, max_samples=8)


@pytest.fixture
def images():
    return np.random.default_rng(1).random((5, *IMAGE_SHAPE), dtype=np.float32)


def torch_out(fn, *arrays):
    with torch.inference_mode():
        out = fn(*(torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in arrays))
    return out.numpy() if isinstance(out, torch.Tensor) else tuple(o.numpy() for o in out)


def test_import_does_not_pull_in_torch(exported):
    code = (
        "import sys, numpy as np, vaeops.serving.inference as inf\n"
        f"m = inf.load({str(exported[0])!r})\n"
        f"out = m.reconstruct(np.full({IMAGE_SHAPE}, 0.5))\n"
        "assert out.shape == " + repr(IMAGE_SHAPE) + ", out.shape\n"
        "assert 'torch' not in sys.modules, 'vaeops.serving.inference imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_providers_are_reported_and_cpu_is_used_here(vae, exported):
    available = onnxruntime.get_available_providers()
    assert vae.providers and set(vae.providers) <= set(available)
    assert vae.providers[-1] == CPU_PROVIDER
    model_bytes = (exported[0] / "reconstruct_mean.onnx").read_bytes()
    assert choose_providers(model_bytes, [CPU_PROVIDER]) == [CPU_PROVIDER]
    with pytest.raises(ParamsError, match="not available"):
        choose_providers(model_bytes, ["NoSuchExecutionProvider"])


def test_encode_and_decode_match_pytorch(vae, exported, images):
    model = exported[1]
    mu, logvar = vae.encode(images)
    ref_mu, ref_logvar = torch_out(model.encode, images.reshape(5, D))
    np.testing.assert_allclose(mu, ref_mu, **TOL)
    np.testing.assert_allclose(logvar, ref_logvar, **TOL)
    single_mu, _ = vae.encode(images[0])
    assert single_mu.shape == (model.config.latent_dim,)
    decoded = vae.decode(mu)
    assert decoded.shape == (5, *IMAGE_SHAPE)
    np.testing.assert_allclose(decoded.reshape(5, D), torch_out(lambda z: model.pixel_mean(model.decode(z)), mu), **TOL)
    assert vae.decode(mu[0]).shape == IMAGE_SHAPE


def test_mean_reconstruction_matches_pytorch_in_every_layout(vae, exported, images):
    reference = torch_out(exported[1], images.reshape(5, D))
    np.testing.assert_allclose(vae.reconstruct(images).reshape(5, D), reference, **TOL)
    assert vae.reconstruct(images).shape == (5, *IMAGE_SHAPE)
    assert vae.reconstruct(images.reshape(5, D)).shape == (5, D)
    np.testing.assert_allclose(vae.reconstruct(images[0]).ravel(), reference[0], **TOL)
    assert vae.reconstruct(images[0].ravel()).shape == (D,)


def test_sampled_reconstruction_uses_the_seeded_noise(vae, exported, images):
    model, latent = exported[1], exported[1].config.latent_dim
    x = images.reshape(5, D)
    eps = np.random.default_rng(7).standard_normal((5, latent), dtype=np.float32)
    np.testing.assert_allclose(vae.reconstruct(x, mode="sample", seed=7), torch_out(model, x, eps), **TOL)
    # S draws: the average of the S decoded images, drawn from the same seeded stream.
    eps = np.random.default_rng(3).standard_normal((4, 5, latent), dtype=np.float32)
    expected = np.mean([torch_out(model, x, e) for e in eps], axis=0)
    got = vae.reconstruct(x, mode="predictive", samples=4, seed=3)
    np.testing.assert_allclose(got, expected, **TOL)
    assert np.array_equal(got, vae.reconstruct(x, mode="predictive", samples=4, seed=3))
    assert not np.array_equal(got, vae.reconstruct(x, mode="predictive", samples=4, seed=4))


def test_generate_decodes_seeded_prior_draws(vae, exported):
    model = exported[1]
    z = np.random.default_rng(0).standard_normal((3, model.config.latent_dim), dtype=np.float32)
    got = vae.generate(3, seed=0)
    assert got.shape == (3, *IMAGE_SHAPE)
    np.testing.assert_allclose(got.reshape(3, D), torch_out(lambda t: model.pixel_mean(model.decode(t)), z), **TOL)


def test_safe_dtypes_are_converted(vae, images):
    binary = images > 0.5
    expected = vae.reconstruct(binary.astype(np.float32))
    for converted in (
        binary,
        binary.astype(np.uint8),
        binary.astype(np.int64),
        binary.astype(np.float64),
    ):
        np.testing.assert_array_equal(vae.reconstruct(converted), expected)
    # JSON's true and false are not numbers: a list holding them is refused, not read as 1.0 and 0.0
    with pytest.raises(InputError, match="not true or false"):
        vae.reconstruct([[0.5] * (D - 1) + [True]])


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 7, 7)), "shape"),
        (np.zeros((2, D + 1)), "shape"),
        (np.zeros((2, 2, 8, 8)), "shape"),
        (np.float32(0.5), "shape"),
        (np.zeros((0, *IMAGE_SHAPE)), "empty batch"),
        (np.zeros((0, D)), "empty batch"),
        ([], "empty batch"),
        (np.full((2, D), np.nan), "NaN"),
        (np.full((2, D), np.inf), "NaN or infinite"),
        (np.full((2, D), 1.5), r"\[0, 1\]"),
        (np.full((2, D), -0.1), r"\[0, 1\]"),
        (np.full((2, D), 255, dtype=np.uint8), "0-255"),
        (np.full((2, D), "0.5"), "real numbers"),
        (np.zeros((2, D), dtype=np.complex64), "real numbers"),
        ([[0.5] * D, [0.5, None] + [0.5] * (D - 2)], "real numbers"),
        ([[0.5] * D, [0.5] * (D - 1)], "rectangular"),
    ],
)
def test_bad_images_raise_input_error(vae, bad, message):
    with pytest.raises(InputError, match=message):
        vae.reconstruct(bad)
    with pytest.raises(InputError, match=message):
        vae.encode(bad)


@pytest.mark.parametrize(
    "value, accepted",
    [
        (0.0, True),
        (-0.0, True),  # equal to 0: the fast check's sign bit sends it to the exact one, which accepts it
        (1.0, True),
        (1e-45, True),  # the smallest float32 above 0
        (float(np.nextafter(np.float32(1), np.float32(2))), False),
        (-1e-45, False),
        (float("nan"), False),
        (float("inf"), False),
        (float("-inf"), False),
    ],
)
def test_the_range_check_is_exact_at_the_edges_of_0_1(vae, value, accepted):
    for dtype in (np.float32, np.float64):  # float32 takes the one-pass check, float64 the min/max one
        batch = np.full((3, D), 0.5, dtype=dtype)
        batch[1, 7] = value
        if accepted:
            assert vae.reconstruct(batch).shape == (3, D)
        else:
            with pytest.raises(InputError, match=r"NaN|\[0, 1\]"):
                vae.reconstruct(batch)


def test_oversize_batches_and_options(vae, images):
    with pytest.raises(BatchTooLarge, match="limit of 16"):
        vae.reconstruct(np.zeros((17, D)))
    with pytest.raises(BatchTooLarge):
        vae.decode(np.zeros((17, 3)))
    with pytest.raises(BatchTooLarge):
        vae.generate(17)
    with pytest.raises(BatchTooLarge, match="samples"):
        vae.reconstruct(images, mode="predictive", samples=9)
    with pytest.raises(InputError, match="unknown mode 'median'"):
        vae.reconstruct(images, mode="median")
    with pytest.raises(InputError, match="mode='predictive' only"):
        vae.reconstruct(images, mode="mean", samples=2)
    for bad_samples in (0, 2.5, True, "2"):
        with pytest.raises(InputError, match="samples"):
            vae.reconstruct(images, mode="predictive", samples=bad_samples)
    for bad_seed in (-1, 1.5, "1"):
        with pytest.raises(InputError, match="seed"):
            vae.generate(2, seed=bad_seed)
    with pytest.raises(InputError, match="n must be"):
        vae.generate(0)
    with pytest.raises(InputError, match="z has shape"):
        vae.decode(np.zeros((2, 4)))
    with pytest.raises(InputError, match="NaN"):
        vae.decode(np.full((2, 3), np.nan))


@pytest.fixture
def copy_of_export(exported, tmp_path):
    target = tmp_path / "onnx"
    shutil.copytree(exported[0], target)
    return target


def test_tampered_file_is_refused(copy_of_export):
    path = copy_of_export / "decoder.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="decoder.onnx does not match the export manifest"):
        OnnxVAE(copy_of_export)


def test_truncated_or_missing_file_is_refused(copy_of_export):
    path = copy_of_export / "encoder.onnx"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="modified or truncated"):
        OnnxVAE(copy_of_export)
    path.unlink()
    with pytest.raises(ModelFileError, match="cannot read"):
        OnnxVAE(copy_of_export)


def test_manifest_problems_are_refused(copy_of_export, tmp_path):
    with pytest.raises(ModelFileError, match="export manifest not found"):
        OnnxVAE(tmp_path / "nowhere")
    manifest_path = copy_of_export / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["graphs"]["encoder"]["file"] = "../encoder.onnx"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="not a file inside"):
        OnnxVAE(copy_of_export)
    manifest_path.write_text("{not json")
    with pytest.raises(ModelFileError, match="not readable JSON"):
        OnnxVAE(copy_of_export)
