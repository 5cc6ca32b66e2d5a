"""The flow against both simulators with fast retries: the shared setup of the fault tests.

Retry delays are shrunk, never skipped: every retry path runs for real, in milliseconds.
`RT_DISPLAYR_TASK_RETRY_DELAY_SCALE` only takes effect when `tasks.retry` is imported after it
is set, so the fixture also puts the scaled delays on the task objects themselves.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rt_displayr.sandbox.displayr_server import DisplayrSimulator
from rt_displayr.sandbox.rt_server import RTSimulator
from tests.sandbox_expectations import COLUMNS, expected_rows

os.environ.setdefault("RT_DISPLAYR_TASK_RETRY_DELAY_SCALE", "0.001")

DATA_NAME = "rt-ticket-history.csv"
RT_USER = "root"
RT_PASSWORD = "s3cret-rt-Passw0rd"
RT_TOKEN = "1-14-0f4c6b3a9e2d8c7b5a1e3f9d2c4b6a8e"
FAST_BACKOFF = "0.01"


def fast_task_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled-down delays on every retrying task, whatever the import order of this session."""
    import tasks.publish
    import tasks.rt
    from tasks.retry import task_retry_delays

    delays = task_retry_delays(0.001)
    for task in (
        tasks.rt.list_tickets,
        tasks.rt.fetch_histories,
        tasks.rt.lookup_privileged_staff,
        tasks.publish.upload_csv,
        tasks.publish.import_data,
    ):
        monkeypatch.setattr(task, "retry_delay_seconds", delays)


def read_rows(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV the flow wrote, the leading row-number column dropped."""
    records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header = records[0]
    rows = [dict(zip(header, record, strict=True)) for record in records[1:]]
    return header, [{column: row[column] for column in COLUMNS} for row in rows]


@dataclass
class FaultSandbox:
    rt: RTSimulator
    displayr: DisplayrSimulator
    secret: str
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        return self.tmp / "out" / DATA_NAME

    @property
    def pending(self) -> Path:
        return self.output.with_name("rt-ticket-history.pending.csv")

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    def parameters(self, **parameters: Any) -> dict[str, Any]:
        merged = {"output": str(self.output), "state_dir": str(self.state_dir)}
        merged.update(self.defaults)
        merged.update(parameters)
        return merged

    def run(self, **parameters: Any) -> dict[str, Any]:
        from flows.rt_to_displayr import rt_to_displayr

        return rt_to_displayr(**self.parameters(**parameters))

    def run_state(self, **parameters: Any) -> Any:
        """The final Prefect state (a failed run does not raise): for its id and its logs."""
        from flows.rt_to_displayr import rt_to_displayr

        return rt_to_displayr(**self.parameters(**parameters), return_state=True)

    def expected(self) -> list[dict[str, str]]:
        """The rows a fault-free run derives from the simulator's current tickets."""
        return expected_rows(self.rt.sim)

    def published(self) -> bytes:
        return self.displayr.data_set(self.secret, DATA_NAME)

    def reply_to(self, ticket_id: int) -> None:
        """A client writes again and staff resolve it again: the ticket changed, still listed."""
        self.rt.add_correspondence(ticket_id, "client@example.com")
        self.rt.set_status(ticket_id, "resolved")

    def use_token(self) -> None:
        self.monkeypatch.delenv("RT_USER")
        self.monkeypatch.delenv("RT_PASSWORD")
        self.monkeypatch.setenv("RT_TOKEN", RT_TOKEN)

    def use_cookie(self) -> None:
        self.monkeypatch.delenv("RT_USER")
        self.monkeypatch.delenv("RT_PASSWORD")
        self.monkeypatch.setenv("RT_COOKIE", self.rt.browser_session())

    def logins(self) -> int:
        """REST logins RT received (RT's `user`/`pass` form is POSTed to the REST root)."""
        log = self.rt.requests_log or []
        return sum(1 for method, path, _ in log if method == "POST" and path.endswith("/1.0/"))


def sandbox_environment(
    monkeypatch: pytest.MonkeyPatch, rt: RTSimulator, displayr: DisplayrSimulator, secret: str
) -> None:
    monkeypatch.setenv("RT_URL", rt.url)
    monkeypatch.setenv("RT_USER", RT_USER)
    monkeypatch.setenv("RT_PASSWORD", RT_PASSWORD)
    monkeypatch.setenv("DISPLAYR_URL", displayr.url)
    monkeypatch.setenv("DISPLAYR_PROJECT_SECRET", secret)
    # 1 s is the shortest timeout settings accept; two tries per request keep a hang short.
    monkeypatch.setenv("RT_TIMEOUT", "1")
    monkeypatch.setenv("RT_MAX_RETRIES", "2")
    monkeypatch.setenv("RT_DISPLAYR_BACKOFF_BASE", FAST_BACKOFF)


@pytest.fixture
def fault_sandbox(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultSandbox]:
    secret = str(uuid.uuid4())
    fast_task_retries(monkeypatch)
    with (
        RTSimulator(
            tickets=40, seed=5, password=RT_PASSWORD, token=RT_TOKEN, log_requests=True
        ) as rt,
        DisplayrSimulator([secret], hang_seconds=5) as displayr,
    ):
        displayr.create_data_set(secret, DATA_NAME)
        sandbox_environment(monkeypatch, rt, displayr, secret)
        yield FaultSandbox(rt, displayr, secret, tmp_path, monkeypatch)
