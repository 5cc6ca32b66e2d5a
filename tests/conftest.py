"""Test-wide setup: Prefect in a throw-away home, no telemetry, and the sandbox fixtures.

PREFECT_HOME must point at a temporary directory before Prefect is imported anywhere, so that
no test reads or writes the developer's own Prefect profile, database or result cache.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

from rt_displayr.sandbox.displayr_server import DisplayrSimulator  # noqa: E402
from rt_displayr.sandbox.rt_server import RTSimulator  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session; stopped at its end."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


DATA_NAME = "rt-ticket-history.csv"


@dataclass
class Sandbox:
    """The two simulators with the environment pointing at them, and the flow run against them."""

    rt: RTSimulator
    displayr: DisplayrSimulator
    secret: str
    tmp: Path

    def run(self, **parameters: object) -> dict:
        from flows.rt_to_displayr import rt_to_displayr

        parameters.setdefault("output", str(self.tmp / "out" / DATA_NAME))
        parameters.setdefault("state_dir", str(self.tmp / "state"))
        return rt_to_displayr(**parameters)

    def published(self) -> bytes:
        return self.displayr.data_set(self.secret, DATA_NAME)


@pytest.fixture
def sandbox(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    """60 generated tickets (seed 3 has dispatchers, unanswered and staff-created tickets) and a
    Displayr project whose data set exists, as a user would have created it once by hand."""
    secret = str(uuid.uuid4())
    with RTSimulator(tickets=60, seed=3) as rt, DisplayrSimulator([secret]) as displayr:
        displayr.create_data_set(secret, DATA_NAME)
        monkeypatch.setenv("RT_URL", rt.url)
        monkeypatch.setenv("RT_USER", "root")
        monkeypatch.setenv("RT_PASSWORD", "password")
        monkeypatch.setenv("DISPLAYR_URL", displayr.url)
        monkeypatch.setenv("DISPLAYR_PROJECT_SECRET", secret)
        yield Sandbox(rt, displayr, secret, tmp_path)
