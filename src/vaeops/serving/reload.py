"""The served model follows the champion: a new manifest in the model folder is loaded and swapped in atomically.

Every request takes the model once (`holder.model`) and finishes on it, so a swap never fails a request in flight;
new requests get the new model. A folder that does not load (a file that fails its sha256, a broken manifest) or
that changes the input contract (image shape, pixel count, likelihood: what clients send) without a deliberate
decision is refused, the old model keeps serving, and the refusal is reported by /health. A deliberate change is one
the folder's install record (`install.json`, written by the promotion gate and by `vaeops champion rollback`) accepts,
from the version being served: `--accept-contract-change` or a rollback. Anything else needs a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaeops.bundle.install import INSTALL_RECORD, Contract, read_install_record
from vaeops.bundle.manifest import MANIFEST
from vaeops.core.errors import VaeopsError
from vaeops.core.fileio import sha256_bytes
from vaeops.serving.inference import OnnxVAE

LOG = logging.getLogger("vaeops.serve")


def accepted_change(model_dir: Path, served_version: str) -> bool:
    """Whether the folder's install record accepts a contract change made from the version being served."""
    record = read_install_record(model_dir)
    return record is not None and record.contract_change_accepted and record.previous_version == served_version


def manifest_digest(model_dir: Path) -> str | None:
    """sha256 of the folder's manifest (it names the sha256 of every file) and install record, or None while the
    manifest cannot be read."""
    try:
        data = (model_dir / MANIFEST).read_bytes()
    except OSError:
        return None
    record = model_dir / INSTALL_RECORD
    return sha256_bytes(data + (record.read_bytes() if record.is_file() else b""))


def now() -> str:
    """The time of a reload outcome, as /health reports it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ModelHolder:
    """The model being served, its version history in this process, and the outcome of the last reload."""

    def __init__(
        self, model_dir: str | Path, options: dict[str, Any], on_swap: Callable[[OnnxVAE], None] | None = None
    ):
        self.model_dir = Path(model_dir)
        self.options = options
        self.on_swap = on_swap
        self.lock = threading.Lock()
        self.digest = manifest_digest(self.model_dir)
        self.model = OnnxVAE(self.model_dir, **options)
        self.loaded_at = time.time()
        self.last_error: str | None = None
        self.refused: str | None = None  # the digest last refused: not retried until the folder changes again

    def status(self) -> dict[str, Any]:
        """What /health reports about the model and its reloads."""
        return {
            "model_version": self.model.manifest.model_version,
            "model_dir": str(self.model_dir),
            "loaded_at": self.loaded_at,
            "last_reload_error": self.last_error,
        }

    def reload(self, force: bool = False) -> bool:
        """Load the folder's model if its manifest changed (or `force`) and swap it in; True when a new model
        serves now. A refusal keeps the old model and is recorded in last_reload_error."""
        with self.lock:
            digest = manifest_digest(self.model_dir)
            if digest is None:
                # Nothing to load (the folder or its manifest gone): say so, and keep serving the old model.
                self.last_error = f"{now()}: refused {self.model_dir}: it has no readable {MANIFEST}"
                return False
            if not force and digest in (self.digest, self.refused):
                return False
            started = time.perf_counter()
            try:
                model = OnnxVAE(self.model_dir, **self.options)
                served = self.model.manifest.model_version
                change = Contract.of(self.model.manifest).change_to(Contract.of(model.manifest))
                if change and not accepted_change(self.model_dir, served):
                    raise VaeopsError(
                        f"the new model changes the input contract ({change}) and its {INSTALL_RECORD} "
                        f"does not accept that change from {served}; promote it with "
                        "-S promote.accept_contract_change=true, or restart `vaeops serve` to serve it"
                    )
            except VaeopsError as exc:
                self.refused = digest
                self.last_error = f"{now()}: refused {self.model_dir}: {exc}"
                LOG.warning("refused to reload %s: %s", self.model_dir, exc)
                return False
            if self.on_swap is not None:
                self.on_swap(model)
            previous, self.model, self.digest, self.refused = self.model, model, digest, None
            self.loaded_at, self.last_error = time.time(), None
            LOG.info(
                "now serving %s (%s, image %s, %s) in place of %s; loaded in %.2f s",
                model.manifest.model_version,
                self.model_dir,
                model.manifest.image_shape,
                model.manifest.likelihood,
                previous.manifest.model_version,
                time.perf_counter() - started,
            )
            return True
