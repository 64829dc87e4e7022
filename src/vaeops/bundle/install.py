"""The input contract of a bundle and the install record (`install.json`) that says how a champion was installed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from vaeops.bundle.manifest import (
    CHECKPOINT,
    DECISION,
    MANIFEST,
    METRICS,
    PROFILE,
    REPORT,
    FileEntry,
    Manifest,
    file_entry,
    read_listed_file,
    read_verified,
)
from vaeops.core.artifacts import Artifact, read_artifact
from vaeops.core.errors import ModelFileError

INSTALL_RECORD = "install.json"
# What an install adds beside the export's graphs and gallery, each listed with its sha256 in the install record.
INSTALLED_FILES = (MANIFEST, METRICS, DECISION, PROFILE, CHECKPOINT, REPORT)
# The report's figures, each as "plot_<name>.png" (plain names only in a bundle): the report links "plots/<name>.png".
PLOT_PREFIX = "plot_"
RESTORE = "restore the champion (`dvc checkout champion`, or `vaeops champion rollback`)"


class Contract(Artifact):
    """What clients send to a model: image shape, pixel count and likelihood."""

    image_shape: list[int]
    input_dim: int
    likelihood: str

    @classmethod
    def of(cls, manifest: Manifest) -> Contract:
        """The contract of a bundle."""
        return cls(image_shape=list(manifest.image_shape), input_dim=manifest.input_dim, likelihood=manifest.likelihood)

    def change_to(self, new: Contract) -> str:
        """'' when `new` asks clients for the same input, else what changes, from what to what."""
        return ", ".join(
            f"{key} {getattr(self, key)} -> {getattr(new, key)}"
            for key in type(self).model_fields
            if getattr(self, key) != getattr(new, key)
        )


class InstallRecord(Artifact):
    """How a folder became the champion: by which command, replacing which version, and whether a change of the
    input contract was a deliberate decision (`vaeops serve` switches to another contract only on such a record)."""

    installed_by: Literal["promotion", "rollback"]
    model_version: str
    previous_version: str | None
    contract_change: str
    contract_change_accepted: bool
    files: dict[str, FileEntry] = {}  # the manifest and each of INSTALLED_FILES the folder holds, with its sha256

    def listing(self, folder: Path) -> InstallRecord:
        """This record, listing the sha256 of the installed files as they are in `folder` now."""
        present = [name for name in INSTALLED_FILES if (folder / name).is_file()]
        present += sorted(path.name for path in folder.glob(f"{PLOT_PREFIX}*.png"))
        files = {name: FileEntry.model_validate(file_entry(name, (folder / name).read_bytes())) for name in present}
        return self.model_copy(update={"files": files})

    @classmethod
    def make(
        cls, how: Literal["promotion", "rollback"], new: Manifest, previous: Manifest | None, accepted: bool
    ) -> InstallRecord:
        """The record of installing `new` over `previous` (None: no champion before)."""
        change = Contract.of(previous).change_to(Contract.of(new)) if previous is not None else ""
        # No timestamp: champion/ is a DVC output, and the same promotion must give the same bytes.
        return cls(
            installed_by=how,
            model_version=new.model_version,
            previous_version=previous.model_version if previous is not None else None,
            contract_change=change,
            contract_change_accepted=bool(change) and accepted,
        )


def contract_change(old: dict, new: dict) -> str:
    """'' when two contracts (as plain dicts, as a decision records them) ask for the same input, else the change."""
    return Contract.model_validate(old).change_to(Contract.model_validate(new))


def read_install_record(bundle_dir: str | Path) -> InstallRecord | None:
    """The bundle's install record, or None when it has none (an export, or a folder copied in by hand)."""
    path = Path(bundle_dir) / INSTALL_RECORD
    return read_artifact(path, InstallRecord, "install record", ModelFileError) if path.is_file() else None


def read_installed(bundle_dir: str | Path) -> tuple[Manifest, dict[str, bytes]]:
    """A bundle's manifest and the bytes of every file its manifest and install record list, each matching its
    sha256 (an export, with no install record, is checked against its manifest alone)."""
    manifest, data = read_verified(bundle_dir)
    record = read_install_record(bundle_dir)
    for name, entry in (record.files if record is not None else {}).items():
        data[name] = read_listed_file(bundle_dir, entry, name, f"its {INSTALL_RECORD}", RESTORE)
    return manifest, data


def read_installed_file(bundle_dir: str | Path, name: str) -> bytes | None:
    """One installed file's bytes, checked against the install record; None where the record does not list it."""
    record = read_install_record(bundle_dir)
    if record is None or name not in record.files:
        return None
    return read_listed_file(bundle_dir, record.files[name], name, f"its {INSTALL_RECORD}", RESTORE)
