"""Champion history: every promotion kept, rollback to any kept champion, a pinned champion the gate keeps."""

import json
import shutil
import subprocess
import sys

import pytest
from lifecycle_helpers import write_candidate

from helpers import REPO, edit_params
from vaeops.core.errors import DataError, ModelFileError, ParamsError
from vaeops.core.params import load_params
from vaeops.lifecycle import champions, writer
from vaeops.lifecycle import history as hist
from vaeops.lifecycle.promote import promote


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def champion_version(project) -> str:
    return json.loads((project / "champion" / "manifest.json").read_text())["model_version"]


def promote_three(project) -> None:
    for version, nll in (("vae@v1", 30.0), ("vae@v2", 29.0), ("vae@v3", 28.0)):
        write_candidate(project, version, nll=nll)
        assert promote(load_params())["promoted"]


def test_every_promotion_is_kept_and_rollback_goes_to_the_one_before(project):
    promote_three(project)
    history = project / "champion-history"
    assert hist.kept(history) == ["vae@v1", "vae@v2", "vae@v3"]
    assert [e.event for e in hist.load_history(history).events] == ["promote"] * 3
    assert champions.rollback(load_params()) == {"champion": "vae@v2", "previous": "vae@v3"}
    assert champion_version(project) == "vae@v2"
    assert champions.rollback(load_params(), "vae@v1")["champion"] == "vae@v1"
    events = hist.load_history(history).events
    assert [(e.event, e.model_version) for e in events[-2:]] == [("rollback", "vae@v2"), ("rollback", "vae@v1")]
    assert events[-1].previous == "vae@v2"
    with pytest.raises(DataError, match="no earlier champion"):
        champions.rollback(load_params())
    with pytest.raises(DataError, match="'vae@v9' is not kept"):
        champions.rollback(load_params(), "vae@v9")


def test_only_the_last_n_are_kept_but_never_the_current_one(project):
    edit_params(project / "params.yaml", {"promote.keep_champions": 2})
    promote_three(project)
    assert hist.kept(project / "champion-history") == ["vae@v2", "vae@v3"]
    assert not (project / "champion-history" / "vae@v1").exists()


def test_a_tampered_kept_copy_is_refused_and_the_champion_stays(project):
    promote_three(project)
    graph = project / "champion-history" / "vae@v2" / "decoder.onnx"
    graph.write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match="decoder.onnx does not match"):
        champions.rollback(load_params())
    assert champion_version(project) == "vae@v3"


def test_a_pinned_champion_is_kept_by_the_gate_until_unpinned(project):
    write_candidate(project, "vae@v1", nll=30.0)
    promote(load_params())
    with pytest.raises(ParamsError, match="only the current champion can be pinned"):
        champions.pin(load_params(), "vae@v0")
    champions.pin(load_params(), "vae@v1")
    write_candidate(project, "vae@v2", nll=20.0)
    decision = promote(load_params())
    assert not decision["promoted"] and "fail: champion vae@v1 is pinned" in "\n".join(decision["reasons"])
    assert champion_version(project) == "vae@v1"
    with pytest.raises(ParamsError, match="champion vae@v0 is not pinned"):
        champions.unpin(load_params(), "vae@v0")  # a version never pinned: refused, nothing written
    champions.unpin(load_params(), "vae@v1")
    with pytest.raises(ParamsError, match="not pinned .pinned: none.; nothing to unpin"):
        champions.unpin(load_params())
    assert promote(load_params())["promoted"] and champion_version(project) == "vae@v2"
    assert [e.event for e in hist.load_history(project / "champion-history").events] == [
        "promote",
        "pin",
        "unpin",
        "promote",
    ]


def test_cli_lists_rolls_back_pins_and_unpins(project):
    promote_three(project)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "vaeops.cli", "champion", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listing = cli("list")
    assert listing.returncode == 0 and listing.stdout.count("promote ") == 3 and "champion: vae@v3" in listing.stdout
    rolled = cli("rollback")
    assert rolled.returncode == 0 and "champion: vae@v2 (was vae@v3)" in rolled.stdout
    assert "pinned: vae@v2" in cli("pin", "vae@v2").stdout
    refused = cli("rollback", "vae@v1")
    assert refused.returncode == 2 and "vae@v2 is pinned" in refused.stderr
    assert cli("unpin").returncode == 0 and "pinned: none" in cli("list").stdout


def with_contract(project, side: int) -> None:
    """Give the candidate's manifest an input contract: side x side pixels, Bernoulli."""
    path = project / "models" / "onnx" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(
        json.dumps({**manifest, "image_shape": [side, side], "input_dim": side * side, "likelihood": "bernoulli"})
    )


def test_the_install_record_says_how_the_champion_came_and_which_contract_change_was_accepted(project):
    write_candidate(project, "vae@v1", nll=30.0)
    with_contract(project, 8)
    promote(load_params())
    first = json.loads((project / "champion" / "install.json").read_text())
    assert (
        first["installed_by"] == "promotion"
        and first["previous_version"] is None
        and not first["contract_change_accepted"]
    )
    assert "at" not in first  # champion/ is a DVC output: the same promotion writes the same bytes
    write_candidate(project, "vae@v2", nll=90.0)
    with_contract(project, 28)
    assert not promote(load_params())["promoted"]  # another contract: never by the NLL rule
    edit_params(project / "params.yaml", {"promote.accept_contract_change": True})
    assert promote(load_params())["promoted"]
    second = json.loads((project / "champion" / "install.json").read_text())
    assert second["previous_version"] == "vae@v1" and second["contract_change_accepted"]
    assert second["contract_change"] == "image_shape [8, 8] -> [28, 28], input_dim 64 -> 784"
    assert champions.rollback(load_params())["champion"] == "vae@v1"
    back = json.loads((project / "champion" / "install.json").read_text())
    assert back["installed_by"] == "rollback" and back["previous_version"] == "vae@v2"
    assert (
        back["contract_change"] == "image_shape [28, 28] -> [8, 8], input_dim 784 -> 64"
        and back["contract_change_accepted"]
    )


def test_a_history_or_pin_missing_keys_is_named(project):
    promote_three(project)
    history = project / "champion-history"
    raw = json.loads((history / "history.json").read_text())
    del raw["events"][0]["contract"]
    (history / "history.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"history.json: key 'events.0.contract': Field required"):
        champions.table(load_params())
    (history / "pin.json").write_text('{"pinned": 7}')
    with pytest.raises(DataError, match=r"pin.json: key 'pinned'"):
        hist.pinned(history)


def test_a_second_writer_is_refused_with_a_message_while_one_holds_the_champion(project):
    write_candidate(project, "vae@v1", nll=30.0)
    promote(load_params())
    write_candidate(project, "vae@v2", nll=20.0)
    with writer.writer_lock(project / "champion-history"):  # another process would hold it like this
        result = subprocess.run(
            [sys.executable, "-m", "vaeops.cli", "promote"], cwd=project, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and "holds" in result.stderr and ".writer.lock" in result.stderr
        assert champion_version(project) == "vae@v1"
    assert promote(load_params())["promoted"] and champion_version(project) == "vae@v2"


def test_two_promotions_at_once_always_leave_the_decision_champion_and_history_consistent(project):
    write_candidate(project, "vae@v0", nll=40.0)
    promote(load_params())
    for round_ in range(1, 6):
        write_candidate(project, f"vae@v{round_}", nll=40.0 - round_)
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "vaeops.cli", "promote"],
                cwd=project,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
        for code, err in outcomes:  # each either ran the gate or was refused by the lock, with a message
            assert code == 0 or (code == 2 and "holds" in err), err
        decision = json.loads((project / "reports" / "promotion.json").read_text())
        served = champion_version(project)
        assert served == f"vae@v{round_}" == decision["champion"]
        assert champions.verified(project / "champion").model_version == served
        events = hist.load_history(project / "champion-history").events
        assert [e.model_version for e in events if e.event == "promote"][-1] == served
        assert hist.kept(project / "champion-history")[-1] == served


def test_every_file_of_the_champion_is_checked_before_promote_trusts_it(project):
    promote_three(project)
    listed = json.loads((project / "champion" / "install.json").read_text())["files"]
    assert {"manifest.json", "metrics.json", "promotion.json"} <= set(listed)
    (project / "champion" / "metrics.json").write_text('{"forged": true}')
    write_candidate(project, "vae@v4", nll=27.0)
    with pytest.raises(ModelFileError, match="metrics.json does not match its install.json"):
        promote(load_params())
    assert champion_version(project) == "vae@v3"
    (project / "champion-history" / "vae@v2" / "promotion.json").write_text("{}")
    with pytest.raises(ModelFileError, match="vae@v2/promotion.json does not match its install.json"):
        champions.rollback(load_params())


def test_the_champion_ships_its_own_report_and_a_rollback_brings_the_earlier_one_back(project):
    for version, nll in (("vae@v1", 30.0), ("vae@v2", 29.0)):
        (project / "reports" / "plots").mkdir(parents=True, exist_ok=True)
        (project / "reports" / "report.md").write_text(f"# report of {version}\n")
        (project / "reports" / "plots" / "gaps.png").write_bytes(version.encode())
        write_candidate(project, version, nll=nll)
        assert promote(load_params())["promoted"]
    listed = json.loads((project / "champion" / "install.json").read_text())["files"]
    assert {"report.md", "plot_gaps.png"} <= set(listed)
    assert (project / "champion" / "report.md").read_text() == "# report of vae@v2\n"
    champions.rollback(load_params())
    assert (project / "champion" / "report.md").read_text() == "# report of vae@v1\n"
    assert (project / "champion" / "plot_gaps.png").read_bytes() == b"vae@v1"
