"""The real Prefect server that every flow test in this folder talks to."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect server on a temporary SQLite database, with PREFECT_HOME (and the task cache) in a temp folder."""
    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "DVC_NO_ANALYTICS": "1",
        }.items():
            mp.setenv(name, value)
        from prefect.settings import (
            PREFECT_HOME,
            PREFECT_LOCAL_STORAGE_PATH,
            temporary_settings,
        )
        from prefect.testing.utilities import prefect_test_harness

        with temporary_settings({PREFECT_HOME: home, PREFECT_LOCAL_STORAGE_PATH: home / "storage"}):
            with prefect_test_harness(server_startup_timeout=120):
                yield home
