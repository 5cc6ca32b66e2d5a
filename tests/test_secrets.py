"""No secret leaves a run: not in a log line, the Prefect API, an error, an artifact or a file.

The Displayr project secret rides in a query string, which urllib3 logs at DEBUG; the RT
password is POSTed and the token sent as a header. Two real flow runs (one that publishes, one
that fails after its import was refused again and again) are searched everywhere they can leave
a trace, with Prefect's own logging to its API switched on.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Imported here, not in the fixture: the first import of the flow configures Prefect's logging,
# which replaces the root handlers, caplog's among them.
from flows.rt_to_displayr import rt_to_displayr
from rt_displayr.errors import DisplayrTransientError
from rt_displayr.sandbox.displayr_server import DisplayrSimulator
from rt_displayr.sandbox.rt_server import RTSimulator
from tests.faults_support import (
    DATA_NAME,
    RT_PASSWORD,
    RT_TOKEN,
    fast_task_retries,
    sandbox_environment,
)


def _files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path


def _api_logs(flow_run_ids: list[Any]) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # drains the shared worker; the instance holds no state
    lines: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)),
                limit=200,
                offset=offset,
            )
            lines += [f"{log.name} {log.message}" for log in page]
            if len(page) < 200:
                return lines
            offset += len(page)


def _artifacts(flow_run_ids: list[Any]) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
        )
    return [f"{a.key} {a.description} {a.data}" for a in artifacts]


def _prefect_database_dir() -> Path | None:
    """The harness's SQLite database: the API's own copy of runs, logs and artifacts."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or "")
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    return Path(url.split(":///", 1)[1]).parent


@pytest.fixture
def two_runs(
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[dict[str, Any]]:
    """A publishing run with user+password, then a failing one with a token; both states."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "prefect", "rt_displayr"):
        caplog.set_level(logging.DEBUG, logger=name)
    fast_task_retries(monkeypatch)
    secret = str(uuid.uuid4())
    parameters = {"output": str(tmp_path / "out" / DATA_NAME), "state_dir": str(tmp_path / "st")}
    with (
        RTSimulator(tickets=20, seed=11, password=RT_PASSWORD, token=RT_TOKEN) as rt,
        DisplayrSimulator([secret]) as displayr,
    ):
        displayr.create_data_set(secret, DATA_NAME)
        sandbox_environment(monkeypatch, rt, displayr, secret)
        succeeded = rt_to_displayr(**parameters, return_state=True)

        monkeypatch.delenv("RT_USER")
        monkeypatch.delenv("RT_PASSWORD")
        monkeypatch.setenv("RT_TOKEN", RT_TOKEN)
        rt.add_correspondence(min(rt.sim.tickets), "client@example.com")
        displayr.inject("import", "http500", times=100)
        failed = rt_to_displayr(**parameters, full_refresh=True, return_state=True)
        yield {
            "secret": secret,
            "succeeded": succeeded,
            "failed": failed,
            "tmp": tmp_path,
            "records": list(caplog.records),
            "displayr_requests": len(displayr.requests),
        }


SECRET_NAMES = ("Displayr project secret", "RT password", "RT token")


def _secrets(run: dict[str, Any]) -> dict[str, str]:
    return dict(zip(SECRET_NAMES, (run["secret"], RT_PASSWORD, RT_TOKEN), strict=True))


def _assert_clean(where: str, texts: list[str], secrets: dict[str, str]) -> None:
    for name, value in secrets.items():
        leaks = [text[:200] for text in texts if value in text]
        assert not leaks, f"{name} found in {where}: {leaks}"


def test_no_secret_leaks_from_a_published_or_a_failed_run(two_runs: dict[str, Any]) -> None:
    secrets = _secrets(two_runs)
    ids = [two_runs[key].state_details.flow_run_id for key in ("succeeded", "failed")]

    # the secrets were really in play: published once, then imports refused with the URL
    assert two_runs["succeeded"].is_completed()
    assert two_runs["failed"].is_failed()
    assert two_runs["displayr_requests"] >= 2 + 1 + 5
    messages = [r.getMessage() for r in two_runs["records"]]
    # urllib3 logged the import URL at DEBUG: the query string, with its secret masked
    assert any("/API/ImportUpdatedData?project=***" in m for m in messages)

    # every log record, exception text included
    texts = []
    for record in two_runs["records"]:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
        if record.exc_text:
            texts.append(record.exc_text)
    _assert_clean("a log record", texts, secrets)

    # the logs the Prefect API stored
    lines = _api_logs(ids)
    assert any("DisplayrTransientError" in line for line in lines)
    assert any("published" in line for line in lines)
    _assert_clean("the Prefect API logs", lines, secrets)

    # the failure and its traceback
    state = two_runs["failed"]
    error = state.result(raise_on_failure=False)
    assert isinstance(error, DisplayrTransientError)
    errors = [str(error), repr(error), state.message or ""]
    errors.append("".join(traceback.format_exception(error)))
    _assert_clean("the error", errors, secrets)

    # the artifacts of both runs
    artifacts = _artifacts(ids)
    assert any(text.startswith("rt-displayr-summary") for text in artifacts)
    _assert_clean("an artifact", artifacts, secrets)

    # every file: output, state, PREFECT_HOME (result cache) and the API's database
    roots = [two_runs["tmp"], Path(os.environ["PREFECT_HOME"])]
    database = _prefect_database_dir()
    assert database is not None and database.is_dir()
    roots.append(database)
    files = [path for root in roots for path in _files(root)]
    assert any(path.name.endswith(".csv") for path in files)
    assert any(path.suffix == ".sqlite3" for path in files)
    assert any(path.suffix == ".db" for path in files)
    for path in files:
        content = path.read_bytes()
        for name, value in secrets.items():
            assert value.encode() not in content, f"{name} found in {path}"
