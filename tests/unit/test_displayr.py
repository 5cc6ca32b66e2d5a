"""The Displayr client against the simulator: request shape, errors, retries, and no secret leaks."""

from __future__ import annotations

import logging
import socket
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from rt_displayr.displayr import DisplayrClient, DisplayrProtocolError, PublishResult
from rt_displayr.errors import (
    ConfigError,
    DisplayrError,
    DisplayrRejected,
    DisplayrTransientError,
)
from rt_displayr.redact import MASK
from rt_displayr.sandbox.displayr_server import DisplayrSimulator
from rt_displayr.settings import DisplayrConnection

SECRET = "7d1e9c2a-4b3f-4e8d-a5c6-1f2e3d4c5b6a"
DATA_NAME = "rt-ticket-history.csv"
INITIAL = b"ticket_id,status\r\n1,open\r\n"
CSV = b"ticket_id,status\r\n1,resolved\r\n2,open\r\n"


@pytest.fixture
def sim() -> Iterator[DisplayrSimulator]:
    with DisplayrSimulator([SECRET]) as simulator:
        simulator.create_data_set(SECRET, DATA_NAME, INITIAL)
        yield simulator


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(
    url: str,
    sleeps: list[float],
    *,
    secret: str = SECRET,
    timeout: float = 5.0,
    max_retries: int = 3,
) -> DisplayrClient:
    conn = DisplayrConnection(
        project_secret=SecretStr(secret), url=url, timeout=timeout, max_retries=max_retries
    )
    return DisplayrClient(conn, sleep=sleeps.append)


@pytest.fixture
def client(sim: DisplayrSimulator, sleeps: list[float]) -> Iterator[DisplayrClient]:
    with make_client(sim.url, sleeps) as displayr:
        yield displayr


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    # a local name unlike the data set's: Displayr must still see the data set name
    path = tmp_path / "output" / "metrics-2026-12-04.csv"
    path.parent.mkdir()
    path.write_bytes(CSV)
    return path


def import_requests(sim: DisplayrSimulator) -> list:
    return [r for r in sim.requests if r.path == "/API/ImportUpdatedData"]


def upload_requests(sim: DisplayrSimulator) -> list:
    return [r for r in sim.requests if r.path == "/API/Upload"]


def test_publish_uploads_as_the_data_set_name_then_imports_with_query_parameters(
    sim, client, csv_path, sleeps
):
    result = client.publish(csv_path, DATA_NAME)

    assert isinstance(result, PublishResult)
    assert (result.data_name, result.rows) == (DATA_NAME, 2)
    assert result.message.startswith("Success")
    stored = sim.uploads[result.upload_id]
    assert (stored.field_name, stored.filename, stored.content) == ("file", DATA_NAME, CSV)
    assert sim.data_set(SECRET, DATA_NAME) == CSV
    (upload_request,) = upload_requests(sim)
    assert upload_request.query == {}
    assert upload_request.content_type.startswith("multipart/form-data")
    (import_request,) = import_requests(sim)
    assert import_request.body_length == 0
    assert import_request.query == {
        "project": [MASK],
        "data_name": [DATA_NAME],
        "upload_id": [result.upload_id],
        "partial": ["false"],
        "abort": ["OnWarning"],
    }
    assert sim.imports[-1]["accepted"] is True
    assert sleeps == []


def test_partial_publish_appends_rows(sim, client, csv_path):
    result = client.publish(csv_path, DATA_NAME, partial=True, abort="Never")

    assert import_requests(sim)[-1].query["partial"] == ["true"]
    assert import_requests(sim)[-1].query["abort"] == ["Never"]
    assert sim.data_set(SECRET, DATA_NAME) == INITIAL + b"1,resolved\r\n2,open\r\n"
    assert result.rows == 2


def test_upload_and_import_can_be_called_separately(sim, client, csv_path):
    upload_id = client.upload(csv_path, DATA_NAME)
    message = client.import_updated_data(DATA_NAME, upload_id, partial=False, abort="OnWarning")

    assert "Success" in message
    assert sim.imports[-1]["upload_id"] == upload_id


def test_unknown_data_set_is_rejected_with_displayrs_message_and_not_retried(
    sim, client, csv_path, sleeps
):
    with pytest.raises(DisplayrRejected) as caught:
        client.publish(csv_path, "other.csv")

    assert "no data set named 'other.csv'" in str(caught.value)
    assert sleeps == []
    assert len(import_requests(sim)) == 1


def test_unknown_project_secret_is_rejected(sim, csv_path, sleeps):
    with (
        make_client(sim.url, sleeps, secret=str(uuid.uuid4())) as displayr,
        pytest.raises(DisplayrRejected, match="No document matches the project secret"),
    ):
        displayr.publish(csv_path, DATA_NAME)
    assert sleeps == []


def test_malformed_project_secret_is_rejected_without_echoing_it(sim, csv_path, sleeps):
    with (
        make_client(sim.url, sleeps, secret="not-a-guid-secret") as displayr,
        pytest.raises(DisplayrRejected, match="it is not a GUID") as caught,
    ):
        displayr.publish(csv_path, DATA_NAME)
    assert "not-a-guid-secret" not in str(caught.value)


def test_unknown_upload_id_message_comes_from_the_header_alone(sim, client, sleeps):
    with pytest.raises(DisplayrRejected, match="was not found; upload the file again"):
        client.import_updated_data(DATA_NAME, str(uuid.uuid4()), partial=False, abort="Never")
    assert sleeps == []


def test_warning_with_on_warning_is_rejected_from_the_html_body(sim, client, tmp_path):
    changed = tmp_path / "changed.csv"
    changed.write_bytes(b"ticket_id,queue\r\n1,General\r\n2,General\r\n")

    with pytest.raises(DisplayrRejected) as caught:
        client.publish(changed, DATA_NAME, abort="OnWarning")

    assert "Import aborted because of warnings" in str(caught.value)
    assert "Variables removed: status" in str(caught.value)
    assert sim.data_set(SECRET, DATA_NAME) == INITIAL


def test_warning_with_never_is_imported(sim, client, tmp_path):
    changed = tmp_path / "changed.csv"
    changed.write_bytes(b"ticket_id,queue\r\n1,General\r\n2,General\r\n")

    result = client.publish(changed, DATA_NAME, abort="Never")

    assert "Warnings: Variables removed: status" in result.message
    assert sim.data_set(SECRET, DATA_NAME) == changed.read_bytes()


@pytest.mark.parametrize("abort", ["Always", "never", ""])
def test_invalid_abort_is_a_config_error_before_any_request(sim, client, csv_path, abort):
    with pytest.raises(ConfigError, match="abort must be one of OnWarning, Never"):
        client.publish(csv_path, DATA_NAME, abort=abort)
    with pytest.raises(ConfigError):
        client.import_updated_data(DATA_NAME, str(uuid.uuid4()), partial=False, abort=abort)
    assert sim.requests == []


@pytest.mark.parametrize("name", ["", "  ", "dir/rt.csv", "C:\\rt.csv"])
def test_data_name_that_is_empty_or_a_path_is_a_config_error(sim, client, csv_path, name):
    with pytest.raises(ConfigError):
        client.publish(csv_path, name)
    assert sim.requests == []


def test_missing_local_csv_fails_before_any_request(sim, client, tmp_path):
    with pytest.raises(FileNotFoundError):
        client.publish(tmp_path / "absent.csv", DATA_NAME)
    assert sim.requests == []


@pytest.mark.parametrize("fault", ["http500", "http503", "reset"])
def test_transient_upload_failure_is_retried(sim, client, csv_path, sleeps, fault):
    sim.inject("upload", fault)

    result = client.publish(csv_path, DATA_NAME)

    assert len(upload_requests(sim)) == 2
    assert len(sleeps) == 1
    assert sim.data_set(SECRET, DATA_NAME) == CSV
    assert result.upload_id in sim.uploads


@pytest.mark.parametrize("fault", ["http500", "http503", "http429", "reset"])
def test_transient_full_import_failure_is_retried(sim, client, csv_path, sleeps, fault):
    sim.inject("import", fault)

    client.publish(csv_path, DATA_NAME)

    assert len(import_requests(sim)) == 2
    assert len(sleeps) == 1
    assert sim.data_set(SECRET, DATA_NAME) == CSV


def test_retry_after_is_honoured(sim, client, csv_path, sleeps):
    sim.inject("import", "http503", times=2)
    sim.inject("import", "http429")

    client.publish(csv_path, DATA_NAME)

    assert sleeps == [1.0, 1.0, 2.0]


def test_backoff_grows_with_jitter_until_retries_run_out(sim, client, csv_path, sleeps):
    sim.inject("upload", "http500", times=10)

    with pytest.raises(DisplayrTransientError) as caught:
        client.publish(csv_path, DATA_NAME)

    assert "after 4 attempt(s)" in str(caught.value)
    assert "HTTP 500: Internal server error (injected)." in str(caught.value)
    assert len(upload_requests(sim)) == 4
    assert import_requests(sim) == []
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0.5 * 2**attempt <= delay <= 2**attempt


def test_partial_import_is_not_repeated_after_an_ambiguous_failure(sim, client, csv_path, sleeps):
    sim.inject("import", "reset")

    with pytest.raises(DisplayrError) as caught:
        client.publish(csv_path, DATA_NAME, partial=True)

    assert not isinstance(caught.value, DisplayrTransientError)
    assert "could duplicate rows" in str(caught.value)
    assert len(import_requests(sim)) == 1
    assert sleeps == []


def test_partial_import_is_repeated_after_a_503(sim, client, csv_path, sleeps):
    sim.inject("import", "http503")

    client.publish(csv_path, DATA_NAME, partial=True)

    assert len(import_requests(sim)) == 2
    assert sim.data_set(SECRET, DATA_NAME) == INITIAL + b"1,resolved\r\n2,open\r\n"


def test_client_error_is_not_retried(sim, client, csv_path, sleeps):
    sim.inject("upload", "http400")

    with pytest.raises(DisplayrRejected, match=r"Bad request \(injected\)"):
        client.publish(csv_path, DATA_NAME)

    assert len(upload_requests(sim)) == 1
    assert sleeps == []


def test_upload_without_upload_id_is_a_clear_final_failure(sim, client, csv_path, sleeps):
    sim.inject("upload", "no_upload_id")

    with pytest.raises(DisplayrProtocolError, match="no UploadID header") as caught:
        client.publish(csv_path, DATA_NAME)

    assert not isinstance(caught.value, DisplayrTransientError)
    assert import_requests(sim) == []
    assert sleeps == []
    assert csv_path.read_bytes() == CSV


def test_hung_upload_times_out_and_is_retried(sim, csv_path, sleeps):
    sim.inject("upload", "hang")

    with make_client(sim.url, sleeps, timeout=0.5) as displayr:
        result = displayr.publish(csv_path, DATA_NAME)

    assert len(sleeps) == 1
    assert len(upload_requests(sim)) == 2
    assert result.upload_id in sim.uploads


def test_hung_import_with_no_retries_left_is_a_transient_timeout(sim, csv_path, sleeps):
    sim.inject("import", "hang")

    with (
        make_client(sim.url, sleeps, timeout=0.5, max_retries=0) as displayr,
        pytest.raises(DisplayrTransientError, match="read timeout"),
    ):
        displayr.publish(csv_path, DATA_NAME)

    assert sleeps == []


def test_unreachable_displayr_is_transient_after_retries(csv_path, sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with (
        make_client(f"http://127.0.0.1:{port}", sleeps, max_retries=2) as displayr,
        pytest.raises(DisplayrTransientError, match="could not connect"),
    ):
        displayr.publish(csv_path, DATA_NAME)

    assert len(sleeps) == 2


def test_repr_and_public_url_mask_the_secret(client):
    assert SECRET not in repr(client)
    url = client.public_data_url(DATA_NAME)
    assert url.endswith("/API/ImportUpdatedData?project=***&data_name=rt-ticket-history.csv")


def exception_texts(exc: BaseException) -> list[str]:
    """Every text an exception can show, down its whole chain."""
    texts = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current), "".join(traceback.format_exception(current))]
        current = current.__cause__ or current.__context__
    return texts


def test_secret_never_appears_in_logs_exceptions_tracebacks_or_reprs(
    sim, csv_path, caplog, sleeps, tmp_path
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    # without the client's care, requests itself would carry the secret in its exception text
    with pytest.raises(requests.ConnectionError) as raw:
        requests.post(f"{closed_url}/API/ImportUpdatedData", params={"project": SECRET}, timeout=2)
    assert SECRET in str(raw.value)

    failures: list[BaseException] = []
    with make_client(sim.url, sleeps, max_retries=1) as displayr:
        for call in (
            lambda: displayr.publish(csv_path, "other.csv"),
            lambda: (sim.inject("import", "reset", times=2), displayr.publish(csv_path, DATA_NAME)),
            lambda: (
                sim.inject("import", "reset"),
                displayr.publish(csv_path, DATA_NAME, partial=True),
            ),
        ):
            try:
                call()
            except DisplayrError as exc:
                failures.append(exc)
        sim.inject("import", "http500")
        result = displayr.publish(csv_path, DATA_NAME)
        client_repr = repr(displayr)
    with (
        make_client(closed_url, sleeps, max_retries=0) as unreachable,
        pytest.raises(DisplayrTransientError) as refused,
    ):
        unreachable.import_updated_data(DATA_NAME, str(uuid.uuid4()), partial=False, abort="Never")
    failures.append(refused.value)

    assert len(failures) == 4
    assert all(exc.__cause__ is None and exc.__context__ is None for exc in failures)
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    assert "project=***" in caplog.text
    texts = [
        caplog.text,
        client_repr,
        repr(result),
        *(t for e in failures for t in exception_texts(e)),
    ]
    texts += [record.getMessage() for record in caplog.records]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in texts:
        assert SECRET not in text
        assert SECRET.upper() not in text
