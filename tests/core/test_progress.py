"""Progress: a plain line with an ETA every few seconds in a log, a tqdm bar on a terminal."""

import io

from vaeops.core import progress as progress_module
from vaeops.core.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_with_an_eta_and_a_last_line(monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    log = io.StringIO()
    with Progress(4, "evaluate vae", stream=log) as bar:
        for _ in range(4):
            bar.update()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("evaluate vae: 25% (") and "ETA" in lines[0]
    assert lines[-1].startswith("evaluate vae: done in") and "\r" not in log.getvalue()


def test_a_terminal_gets_a_bar_and_a_disabled_progress_prints_nothing():
    screen = Terminal()
    with Progress(10, "train", stream=screen) as bar:
        bar.update(10)
    assert "train:" in screen.getvalue() and "it/s" in screen.getvalue() and "\r" in screen.getvalue()  # a tqdm bar
    quiet = io.StringIO()
    with Progress(10, "rank 1", stream=quiet, enabled=False) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""
