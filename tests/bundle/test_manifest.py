"""The bundle contract: a manifest round-trips through its schema, and every fault is named by file and key."""

from __future__ import annotations

import json

import pytest

from helpers import write_stand_in_export
from vaeops.bundle.install import Contract, InstallRecord, read_install_record
from vaeops.bundle.manifest import MANIFEST, read_manifest, read_verified
from vaeops.core.errors import ModelFileError


@pytest.fixture
def bundle(tmp_path):
    manifest = write_stand_in_export(tmp_path / "bundle", "vae@abc", "models/vae/best.pt", "d" * 64)
    return tmp_path / "bundle", manifest


def test_a_written_manifest_reads_back_equal_and_every_listed_file_is_verified(bundle):
    folder, manifest = bundle
    assert read_manifest(folder) == manifest
    read_back, files = read_verified(folder)
    assert read_back.variant == "vae" and sorted(files) == sorted(e.file for e in manifest.graphs.values())


def test_floats_are_written_with_six_significant_digits(bundle):
    folder, manifest = bundle
    text = manifest.model_copy(update={"metrics": {"nll": 24.641136403203344}}).to_json()
    assert json.loads(text)["metrics"]["nll"] == 24.6411


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(model_version=""), "key 'model_version'"),
        (lambda m: m.update(likelihood="poisson"), "key 'likelihood'"),
        (lambda m: m.update(extra_key=1), "key 'extra_key': Extra inputs are not permitted"),
        (lambda m: m["graphs"].pop("encoder"), "names no file for graph"),
        (lambda m: m["graphs"]["encoder"].update(file="/etc/passwd"), "not a file inside the bundle"),
        (lambda m: m["graphs"]["encoder"].update(sha256="zz"), "key 'graphs.encoder.sha256'"),
    ],
)
def test_a_broken_manifest_names_the_file_and_the_key(bundle, change, message):
    folder, _ = bundle
    raw = json.loads((folder / MANIFEST).read_text())
    change(raw)
    (folder / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ModelFileError, match=message) as caught:
        read_manifest(folder)
    assert str(folder / MANIFEST) in str(caught.value)


def test_a_modified_file_is_refused(bundle):
    folder, _ = bundle
    (folder / "decoder.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match="decoder.onnx does not match the export manifest"):
        read_verified(folder)


def test_contract_changes_and_install_records(bundle, tmp_path):
    folder, old = bundle
    new = write_stand_in_export(tmp_path / "other", "vae@def", "models/vae/best.pt", "d" * 64, likelihood="gaussian")
    assert Contract.of(old).change_to(Contract.of(old)) == ""
    assert Contract.of(old).change_to(Contract.of(new)) == "likelihood bernoulli -> gaussian"
    record = InstallRecord.make("promotion", new, old, accepted=True)
    assert record.previous_version == "vae@abc" and record.contract_change_accepted
    assert not InstallRecord.make("promotion", new, old, accepted=False).contract_change_accepted
    assert not InstallRecord.make("promotion", new, None, accepted=True).contract_change_accepted
    assert read_install_record(folder) is None
    (folder / "install.json").write_text(json.dumps({"installed_by": "someone"}))
    with pytest.raises(ModelFileError, match="install.json: key 'installed_by'"):
        read_install_record(folder)
