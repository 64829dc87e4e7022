"""Real-browser helpers: Debian's Chromium driven by Playwright, with every request off this machine blocked."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

# Screenshots the browser tests leave, outside the checkout (tests write only under temporary folders); set
# VAEOPS_TEST_ARTIFACTS to keep them elsewhere.
ARTIFACTS = Path(os.environ.get("VAEOPS_TEST_ARTIFACTS", Path(tempfile.gettempdir()) / "vaeops-test-artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", ""}


def chromium() -> str:
    """The system Chromium, or a skip that says how to get it (Playwright's own browser download is not used)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("browser tests need Debian's Chromium: `apt-get install chromium` (.ci/run installs it)")
    return path


@contextmanager
def offline_page(viewport: tuple[int, int] = (1280, 1400)) -> Iterator[tuple[object, list[str]]]:
    """A page in a fresh context where only loopback and file:// URLs load; `problems` collects console errors,
    uncaught exceptions, failed requests and every blocked request."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []

    def route(target) -> None:
        url = urlparse(target.request.url)
        if url.scheme in ("file", "data", "blob") or url.hostname in LOCAL_HOSTS:
            target.continue_()
        else:
            problems.append(f"blocked request to {target.request.url}")
            target.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.route("**/*", route)
            page = context.new_page()
            page.on(
                "console",
                lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None,
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url} {request.failure}"))
            yield page, problems
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
