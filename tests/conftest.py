"""Test-wide setup: Prefect in a throw-away home, no telemetry, and the sandbox fixtures.

PREFECT_HOME must point at a temporary directory before Prefect is imported anywhere, so that
no test reads or writes the developer's own Prefect profile, database or result cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

_PREFECT_HOME = tempfile.mkdtemp(prefix="rt-displayr-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
# Settings come from the test's environment only, never from Secret blocks of a real server.
os.environ["RT_DISPLAYR_NO_PREFECT_CONFIG"] = "1"
for _name in (
    "RT_URL",
    "RT_USER",
    "RT_PASSWORD",
    "RT_TOKEN",
    "RT_COOKIE",
    "DISPLAYR_URL",
    "DISPLAYR_PROJECT_SECRET",
    "DISPLAYR_DATA_NAME",
    "RT_DISPLAYR_STATE_DIR",
):
    os.environ.pop(_name, None)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session; stopped at its end."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
