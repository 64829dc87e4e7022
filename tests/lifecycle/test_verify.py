"""A corrupt DVC cache object: `dvc checkout` writes its bytes and exits 0 (DVC does not re-hash on checkout);
`vaeops verify` names the file and exits 2, and passes again once the file is restored."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from lifecycle_helpers import write_candidate

from helpers import REPO
from vaeops.core.params import load_params
from vaeops.dataset.splits import write_prepared
from vaeops.lifecycle.promote import promote

DVC = str(Path(sys.executable).with_name("dvc"))


def run(*args, cwd):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_verify_catches_what_a_checkout_of_a_corrupt_cache_wrote(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    splits = {s: (rng.random((20, 8, 8), dtype=np.float32), np.arange(20) % 10) for s in ("train", "val", "test")}
    write_prepared(tmp_path / "data" / "prepared", splits, {"dataset": "digits"})
    write_candidate(tmp_path, "vae@v1", nll=30.0)
    promote(load_params())
    for command in (["git", "init", "-q"], [DVC, "init", "-q"], [DVC, "add", "-q", "data/prepared", "champion"]):
        assert run(*command, cwd=tmp_path).returncode == 0
    good = run(sys.executable, "-m", "vaeops.cli", "verify", cwd=tmp_path)
    assert good.returncode == 0 and "ok     prepared data: 3 split files" in good.stdout
    assert "ok     champion: vae@v1" in good.stdout and "ok     export: vae@v1" in good.stdout

    target = tmp_path / "data" / "prepared" / "train.npz"
    sha = hashlib.md5(target.read_bytes()).hexdigest()
    cached = tmp_path / ".dvc" / "cache" / "files" / "md5" / sha[:2] / sha[2:]
    cached.chmod(0o644)
    cached.write_bytes(cached.read_bytes()[:-7] + b"corrupt")
    target.unlink()
    checkout = run(DVC, "checkout", "data/prepared.dvc", cwd=tmp_path)
    assert checkout.returncode == 0  # DVC's behaviour: the corrupt bytes are in the workspace, and no error
    bad = run(sys.executable, "-m", "vaeops.cli", "verify", cwd=tmp_path)
    assert bad.returncode == 2 and "FAILED prepared data" in bad.stdout and "train.npz does not match" in bad.stdout
    assert "1 artifact(s) failed" in bad.stderr and "Traceback" not in bad.stderr
