"""A kill (SIGKILL) at each step of promote, rollback and pin loses nothing: the champion is whole, and the next
writer removes the debris and records in the history what the killed one installed or pinned."""

import json
import signal
import subprocess
import sys
import textwrap

import pytest
from lifecycle_helpers import project_with_champions, write_candidate

from vaeops.core.params import load_params
from vaeops.lifecycle import champions, writer
from vaeops.lifecycle import history as hist
from vaeops.lifecycle.promote import promote

# Run one command in a child that kills itself (SIGKILL: no clean-up, no finally) on the nth call of a function.
KILLED_RUN = """
import importlib, os, signal
from vaeops.core.params import load_params
module = importlib.import_module({module!r})
real, calls = getattr(module, {name!r}), [0]
def step(*args, **kwargs):
    calls[0] += 1
    if calls[0] == {nth}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(module, {name!r}, step)
from vaeops.lifecycle import champions, promote
{command}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    project_with_champions(tmp_path, monkeypatch)
    return tmp_path


def killed(project, module: str, name: str, command: str, nth: int = 1) -> None:
    """Run `command` in a child killed on the `nth` call of `module.name`; it must have died there."""
    code = textwrap.dedent(KILLED_RUN).format(module=module, name=name, nth=nth, command=command)
    run = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr


def served(project) -> str:
    return champions.verified(project / "champion").model_version  # whole: every file matches the manifest


def consistent(project) -> None:
    """What every writer leaves: no debris, the history's last install is the champion, and it is kept."""
    history = project / "champion-history"
    assert not [p.name for p in [*project.glob(".champion*"), *history.glob(".*.tmp"), *project.glob("reports/.*")]]
    assert hist.load_history(history).installed() == served(project) and served(project) in hist.kept(history)
    assert hist.load_history(history).pinned() == hist.pinned(history)


PROMOTE_STEPS = [  # (module, function, nth call): the instants a kill lands in, in the order promote reaches them
    ("vaeops.lifecycle.promote", "write_json_atomic", 1),  # while staging the new champion folder
    ("vaeops.core.fileio", "_exchange", 1),  # staged, not yet swapped in
    ("vaeops.lifecycle.history", "archive", 1),  # swapped in, no kept copy, no history entry
    ("vaeops.lifecycle.history", "write_event", 1),  # kept copy written, no history entry
    ("vaeops.lifecycle.promote", "write_artifact", 2),  # history written, the decision not yet
]


@pytest.mark.parametrize("module,name,nth", PROMOTE_STEPS, ids=[f"{n}#{k}" for _, n, k in PROMOTE_STEPS])
def test_a_promotion_killed_at_any_step_leaves_a_whole_champion_that_the_rerun_records(project, module, name, nth):
    write_candidate(project, "vae@v3", nll=20.0)
    killed(project, module, name, "promote.promote(load_params())", nth)
    assert served(project) in ("vae@v2", "vae@v3")  # the old champion or the new one, whole
    decision = promote(load_params())  # the rerun: recovers first, then judges again
    consistent(project)
    assert served(project) == "vae@v3" == decision["champion"]
    assert champions.rollback(load_params())["champion"] == "vae@v2"  # the history can go back from it
    consistent(project)


@pytest.mark.parametrize("name", ["_exchange", "write_event"])
def test_a_rollback_killed_before_or_after_its_swap_is_recovered(project, name):
    module = "vaeops.core.fileio" if name == "_exchange" else "vaeops.lifecycle.history"
    killed(project, module, name, "champions.rollback(load_params())")
    assert served(project) in ("vae@v1", "vae@v2")
    champions.pin(load_params(), served(project))  # the next writer recovers, then pins
    events = hist.load_history(project / "champion-history").events
    assert [e.recovered for e in events if e.event == "rollback"] == ([True] if name == "write_event" else [])
    consistent(project)


def test_a_pin_killed_between_the_pin_file_and_its_event_is_recorded_by_the_next_writer(project):
    killed(project, "vaeops.lifecycle.history", "write_event", "champions.pin(load_params(), 'vae@v2')")
    assert hist.pinned(project / "champion-history") == "vae@v2"
    write_candidate(project, "vae@v3", nll=10.0)
    decision = promote(load_params())
    assert not decision["promoted"] and served(project) == "vae@v2"  # the pin holds
    last = hist.load_history(project / "champion-history").events[-1]
    assert (last.event, last.model_version, last.recovered) == ("pin", "vae@v2", True)
    consistent(project)


def test_the_cli_says_what_it_repaired(project):
    write_candidate(project, "vae@v3", nll=20.0)
    killed(project, "vaeops.lifecycle.history", "archive", "promote.promote(load_params())")
    run = subprocess.run(
        [sys.executable, "-m", "vaeops.cli", "champion", "pin", "vae@v3"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "recorded vae@v3, installed by an interrupted command" in run.stderr
    assert (
        "(recovered)"
        in subprocess.run(
            [sys.executable, "-m", "vaeops.cli", "champion", "list"], cwd=project, capture_output=True, text=True
        ).stdout
    )
    assert writer.recover(load_params()) == []  # nothing left to repair
    assert json.loads((project / "champion-history" / "pin.json").read_text()) == {"pinned": "vae@v3"}
