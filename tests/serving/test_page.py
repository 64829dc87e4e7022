"""The page at `/`, its endpoints, the report and the API docs: real server, real exported champion, real browser."""

from __future__ import annotations

import json
import math
import re

import httpx
import matplotlib
import numpy as np
import pytest
import torch
import yaml

from browser import offline_page, screenshot
from helpers import evaluation_metrics
from onnx_helpers import IMAGE_SHAPE, Server, make_project
from vaeops.core.params import load_params
from vaeops.dataset.splits import manifest_sha256
from vaeops.evaluation.tables import reconstruction_table
from vaeops.export.export import export
from vaeops.lifecycle.promote import promote
from vaeops.model.objectives import gaussian_kl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REQUEST = {"samples": 16, "seed": 0, "ks": [1, 10, 100, 1000], "repeats": 10}  # what the page asks for


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A promoted champion (with its gallery), a report with a figure, and `vaeops serve` on them."""
    root = tmp_path_factory.mktemp("page")
    params, model = make_project(root)
    reports = root / "reports"
    (reports / "plots").mkdir(parents=True)
    data_sha = manifest_sha256(root / "data" / "prepared")
    (reports / "metrics.json").write_text(
        json.dumps(
            {
                **evaluation_metrics(
                    data_sha,
                    vae={
                        "nll": 44.5,
                        "nll_ci95_low": 43.9,
                        "nll_ci95_high": 45.1,
                        "elbo": -45.1,
                        "jensen_gap": 1.2,
                        "e_log_px": -21.5,
                        "active_units": 3,
                    },
                    plugin={"nll": 50.0, "e_log_px": -64.2},
                ),
                "dataset": "test-random",
                "images": 30,
            }
        )
    )
    (reports / "validation.json").write_text(json.dumps({"success": True, "data_sha256": data_sha}))
    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    figure.savefig(reports / "plots" / "figure.png")
    # the report's own table code, so the browser sees its escaping of "|" in E_q[log p(x|z)]
    table = reconstruction_table(json.loads((reports / "metrics.json").read_text())["models"])
    (reports / "report.md").write_text(f"# Why sample z?\n\n{table}\n\n![a figure](plots/figure.png)\n")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["validate"] = {"report": str(reports / "validation.json")}
    raw["promote"] = {
        "champion_dir": str(root / "champion"),
        "decision": str(reports / "promotion.json"),
        "history_dir": str(root / "champion-history"),
    }
    raw["serve"].update(model_dir=str(root / "champion"), report_dir=str(reports), max_samples=64)
    raw.setdefault("evaluate", {})["out_dir"] = str(reports)  # promote ships this report with the champion
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(root / "params.yaml")
    export(params)
    assert promote(params)["promoted"]
    server = Server(["--params", str(root / "params.yaml"), "-S", "serve.port=0"])
    try:
        yield server.url(), model
    finally:
        server.stop()


def test_gallery_ships_with_the_champion(site):
    url, _ = site
    gallery = httpx.get(f"{url}/gallery").json()
    assert gallery["image_shape"] == list(IMAGE_SHAPE)
    images = np.array(gallery["images"])
    assert images.shape == (30, *IMAGE_SHAPE) and len(set(gallery["labels"])) > 5  # every test image, many classes


def test_explain_matches_pytorch_and_repeats_exactly(site):
    url, model = site
    image = np.array(httpx.get(f"{url}/gallery").json()["images"][2], dtype=np.float32)
    result = httpx.post(f"{url}/explain", json={"image": image.tolist(), **REQUEST}, timeout=60).json()
    assert result == httpx.post(f"{url}/explain", json={"image": image.tolist(), **REQUEST}, timeout=60).json()
    x = torch.from_numpy(image.reshape(1, -1))
    with torch.inference_mode():
        mu, logvar = model.encode(x)
        log_px_mu = model.log_likelihood(x, model.decode(mu)).item()
        kl = gaussian_kl(mu, logvar).sum().item()
    assert result["log_px_mu"] == pytest.approx(log_px_mu, abs=1e-3)  # probabilities, not logits: 1e-7 clipping
    assert result["kl"] == pytest.approx(kl, rel=1e-5)
    assert result["jensen_gap"] == pytest.approx(result["log_px_mu"] - result["e_log_px"])
    assert len(result["log_px_samples"]) == 16 and result["e_log_px"] == pytest.approx(
        np.mean(result["log_px_samples"])
    )
    assert result["log_px_predictive"] >= result["e_log_px"]  # the predictive mean, concave in the pixel means
    rows = result["estimators"]
    assert [r["k"] for r in rows] == REQUEST["ks"]
    assert rows[-1]["elbo_std"] < rows[0]["elbo_std"] / 10  # 1/sqrt(K): 1000 draws are ~30x less noisy than one
    assert rows[-1]["iwae_mean"] >= rows[-1]["elbo_mean"] - 3 * rows[-1]["elbo_std"]  # L_K >= ELBO up to noise
    assert np.array(result["sampled_decodes"]).shape == (16, *IMAGE_SHAPE)


BAD = [
    ("wrong shape", {"image": [[0.5] * 5] * 5}, 422, "explain takes one image"),
    ("a batch", {"image": [[[0.5] * 8] * 8] * 2}, 422, "explain takes one image"),
    ("out of range", {"image": [[2.0] * 8] * 8}, 422, r"\[0, 1\]"),
    ("NaN", {"image": [[math.nan] * 8] * 8}, 422, "NaN"),
    ("strings", {"image": [["a"] * 8] * 8}, 422, "real numbers"),
    ("too many samples", {"image": [[0.5] * 8] * 8, "samples": 65}, 413, "samples"),
    ("one sample", {"image": [[0.5] * 8] * 8, "samples": 1}, 422, "samples"),
    ("no K", {"image": [[0.5] * 8] * 8, "ks": []}, 422, "ks"),
    ("zero K", {"image": [[0.5] * 8] * 8, "ks": [0]}, 422, "K"),
    ("too many draws", {"image": [[0.5] * 8] * 8, "ks": [100000]}, 413, "decoder runs"),
    ("seed as text", {"image": [[0.5] * 8] * 8, "seed": "1"}, 422, "integer"),
]


@pytest.mark.parametrize("name, payload, status, message", BAD, ids=[b[0] for b in BAD])
def test_explain_refuses_bad_input_with_4xx(site, name, payload, status, message):
    url, _ = site
    response = httpx.post(f"{url}/explain", content=json.dumps(payload), headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert re.search(message, json.dumps(response.json()["detail"]), re.IGNORECASE), response.text


def test_model_card_names_version_data_metrics_and_promotion(site):
    url, _ = site
    card = httpx.get(f"{url}/model-card").json()
    assert card["model_version"].startswith("vae@") and card["data"]["dataset"] == "test-random"
    assert card["metrics"]["nll"] == 44.5 and card["promotion"]["promoted"] is True
    assert any("no champion yet" in reason for reason in card["promotion"]["reasons"])
    schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/gallery", "/explain", "/model-card", "/report"} <= set(schema["paths"])


def test_page_shows_the_answer_offline_with_the_apis_numbers(site):
    url, _ = site
    with offline_page() as (page, problems):
        page.goto(f"{url}/")
        page.wait_for_selector("#result:not([hidden])")  # the first test image is explained on load
        assert page.text_content("#chosen").startswith("test image 0")
        page.locator(".thumb").nth(2).click()
        page.wait_for_function("document.getElementById('chosen').textContent.startsWith('test image 2')")
        page.wait_for_selector("#result:not([hidden])")
        for panel in ("original", "mean", "average", "spread"):
            assert page.locator(f"#panel-{panel} canvas").count() == 1
        assert page.locator("#panel-samples canvas").count() == 8
        image = httpx.get(f"{url}/gallery").json()["images"][2]
        api = httpx.post(f"{url}/explain", json={"image": image, **REQUEST}, timeout=60).json()
        shown = {
            key: float(page.locator(f"#num-{key.replace('_', '-')}").get_attribute("data-value"))
            for key in ("log_px_mu", "log_px_predictive", "e_log_px", "jensen_gap", "kl", "elbo", "plugin_elbo")
        }
        assert shown == {key: api[key] for key in shown}
        assert page.locator("#k-table tbody tr").count() == 4
        assert page.locator("#k-chart polyline").count() == 2
        assert page.locator("#k-chart .y-tick").count() >= 3  # readable ticks, not just the two ends
        bars = page.evaluate(
            "[...document.querySelectorAll('#k-chart line')]"
            ".filter(l => l.getAttribute('x1') === l.getAttribute('x2'))"
            ".filter(l => l.getAttribute('y1') !== l.getAttribute('y2'))"
            ".map(l => [+l.getAttribute('y1'), +l.getAttribute('y2')])"
        )
        assert bars and all(16 <= min(b) and max(b) <= 260 - 36 for b in bars)  # error bars inside the axes
        assert (
            "overstates" in page.text_content("#verdict")
            or "understates" in page.text_content("#verdict")
            or "not distinguishable" in page.text_content("#verdict")
        )
        page.wait_for_function("document.querySelector('#card').children.length > 0")
        assert api["model_version"] in page.text_content("#card")
        assert "no champion yet" in page.text_content("#promotion")
        screenshot(page, "page")
    assert problems == []


def test_drawing_is_explained(site):
    url, _ = site
    with offline_page() as (page, problems):
        page.goto(f"{url}/")
        page.wait_for_selector(".thumb")
        box = page.locator("#draw").bounding_box()
        page.mouse.move(box["x"] + 60, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + 110, box["y"] + 190, steps=12)
        page.mouse.up()
        page.click("#draw-use")
        page.wait_for_selector("#result:not([hidden])")
        assert page.text_content("#chosen") == "your drawing"
        assert float(page.locator("#num-kl").get_attribute("data-value")) > 0
        screenshot(page, "page-drawing")
    assert problems == []


def test_report_and_api_docs_render_offline(site):
    url, _ = site
    with offline_page() as (page, problems):
        page.goto(f"{url}/report")
        assert page.locator("table").count() == 1
        rows = page.evaluate(
            "[...document.querySelectorAll('table tr')].map(r => [...r.children].map(c => c.textContent.trim()))"
        )
        assert all(len(row) == len(rows[0]) == 3 for row in rows)  # every row as many cells as the header
        assert rows[0] == ["", "vae", "plugin"]
        e_q = next(row for row in rows if row[0].startswith("E_q[log p(x|z)]"))
        assert e_q[1:] == ["-21.50", "-64.20"]  # each value under its own model
        assert "shipped with the served model vae@" in page.locator("#report-source").inner_text()
        assert page.evaluate("document.querySelector('img').naturalWidth") > 0
        screenshot(page, "report")
        page.goto(f"{url}/docs")
        page.wait_for_selector(".opblock")
        assert page.locator(".opblock").count() >= 10  # the JSON API, /v2, the page's endpoints
        screenshot(page, "swagger-ui")
        assert problems == []
        page.goto(f"{url}/redoc")
        page.wait_for_selector("text=/explain", timeout=30_000)
        screenshot(page, "redoc")
    # ReDoc's bundle always asks for its "API docs by Redocly" logo from its CDN (no option turns it off); offline
    # the image fails and ReDoc hides it. Nothing else may leave this machine.
    logo = [p for p in problems if "https://cdn.redoc.ly/redoc/logo-mini.svg" in p]
    assert [p for p in problems if p not in logo] in ([], ["console: Failed to load resource: net::ERR_FAILED"])
