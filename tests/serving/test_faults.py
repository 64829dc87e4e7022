"""Files gone bad on disk under a running app: each answer names the problem with a 4xx/503, never a bare 500."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from vaeops.bundle.install import INSTALL_RECORD, InstallRecord
from vaeops.bundle.manifest import read_manifest
from vaeops.core.artifacts import write_artifact
from vaeops.core.params import ServeParams
from vaeops.serving.serve import create_app


@pytest.fixture
def app_on_copy(serve_project, tmp_path):
    """An in-process app (reload polling off) over a copy of the exported model and a report folder."""
    root = serve_project[0]
    model_dir, reports = tmp_path / "model", tmp_path / "reports"
    shutil.copytree(root / "models" / "onnx", model_dir)
    reports.mkdir()
    (reports / "report.md").write_text("# report\n")
    (reports / "plots").mkdir()
    (reports / "plots" / "a.png").write_bytes(b"png")
    app = create_app(ServeParams(model_dir=str(model_dir), report_dir=str(reports), reload_seconds=0))
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        yield client, model_dir, reports


def test_a_tampered_gallery_is_a_503_naming_the_file(app_on_copy):
    client, model_dir, _ = app_on_copy
    (model_dir / "gallery.npz").write_bytes(b"not the gallery")
    response = client.get("/gallery")
    assert response.status_code == 503 and "gallery.npz does not match the export manifest" in response.json()["detail"]


def test_a_report_that_is_not_utf8_is_a_503_with_the_reason(app_on_copy):
    client, _, reports = app_on_copy
    assert client.get("/report").status_code == 200
    (reports / "report.md").write_bytes(b"\xff\xfe not text")
    response = client.get("/report")
    assert response.status_code == 503 and "cannot be read" in response.json()["detail"]


def test_a_reload_of_a_folder_without_its_manifest_is_refused_with_the_reason(app_on_copy):
    client, model_dir, _ = app_on_copy
    version = client.get("/health").json()["model_version"]
    (model_dir / "manifest.json").unlink()
    response = client.post("/admin/reload")
    assert response.status_code == 409 and not response.json()["reloaded"]
    assert "no readable manifest.json" in response.json()["last_reload_error"]
    health = client.get("/health").json()
    assert health["model_version"] == version and "no readable manifest.json" in health["last_reload_error"]
    assert client.post("/encode", json={"images": [[0.5] * 8] * 8}).status_code == 200  # the old model serves on


def test_a_champion_file_changed_after_its_install_is_a_503_on_the_model_card(app_on_copy):
    client, model_dir, _ = app_on_copy
    (model_dir / "metrics.json").write_text('{"dataset": "digits", "models": {}}')
    record = InstallRecord.make("promotion", read_manifest(model_dir), None, accepted=False)
    write_artifact(model_dir / INSTALL_RECORD, record.listing(model_dir))
    assert client.get("/model-card").json()["data"]["dataset"] == "digits"
    (model_dir / "metrics.json").write_text('{"dataset": "forged", "models": {}}')
    response = client.get("/model-card")
    assert response.status_code == 503 and "metrics.json does not match its install.json" in response.json()["detail"]


def test_nothing_outside_the_report_folder_is_served(app_on_copy):
    client, _, reports = app_on_copy
    (reports.parent / "secret.txt").write_text("not for clients")
    assert client.get("/report/plots/a.png").content == b"png"
    for path in (
        "/report/plots/../../secret.txt",
        "/report/plots/%2e%2e/%2e%2e/secret.txt",
        "/report/plots/..%2fsecret.txt",
    ):
        response = client.get(path)
        assert response.status_code == 404 and b"not for clients" not in response.content, path


def test_the_served_models_own_report_is_shown_and_checked(app_on_copy):
    client, model_dir, _ = app_on_copy
    assert "ships no report" in client.get("/report").text  # an export: the latest report, said so
    (model_dir / "report.md").write_text("# the champion's own report\n\n![g](plots/g.png)\n")
    (model_dir / "plot_g.png").write_bytes(b"figure of the champion")
    record = InstallRecord.make("promotion", read_manifest(model_dir), None, accepted=False)
    write_artifact(model_dir / INSTALL_RECORD, record.listing(model_dir))
    page = client.get("/report").text
    assert "the champion&#x27;s own report" in page or "the champion's own report" in page
    assert "shipped with the served model" in page and 'src="/report/plots/g.png"' in page
    assert client.get("/report/plots/g.png").content == b"figure of the champion"
    (model_dir / "report.md").write_text("# forged\n")
    response = client.get("/report")
    assert response.status_code == 503 and "report.md does not match its install.json" in response.json()["detail"]
