"""The Displayr simulator answers as the documented API does, errors and faults included."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests

from rt_displayr.redact import MASK
from rt_displayr.sandbox.displayr_server import DisplayrSimulator

SECRET = "0b6f3f7e-2c1d-4a5b-9e8f-7a6b5c4d3e2f"
DATA_NAME = "rt-ticket-history.csv"
INITIAL = b"ticket_id,status\r\n1,open\r\n2,resolved\r\n"


@pytest.fixture
def sim() -> Iterator[DisplayrSimulator]:
    with DisplayrSimulator([SECRET]) as simulator:
        simulator.create_data_set(SECRET, DATA_NAME, INITIAL)
        yield simulator


def upload(sim: DisplayrSimulator, content: bytes, filename: str = DATA_NAME) -> str:
    response = requests.post(
        f"{sim.url}/API/Upload", files={"file": (filename, content, "text/csv")}, timeout=5
    )
    assert response.status_code == 200, response.headers
    return response.headers["UploadID"]


def import_data(sim: DisplayrSimulator, **params: str) -> requests.Response:
    query = {"project": SECRET, "data_name": DATA_NAME, "partial": "false", "abort": "OnWarning"}
    query.update(params)
    return requests.post(
        f"{sim.url}/API/ImportUpdatedData",
        params={k: v for k, v in query.items() if v is not None},
        timeout=5,
    )


def test_upload_stores_the_file_and_returns_its_id_in_the_header_with_an_empty_body(sim):
    response = requests.post(
        f"{sim.url}/API/Upload",
        files={"file": ("rt-ticket-history.csv", b"a,b\r\n1,2\r\n", "text/csv")},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.content == b""
    upload_id = response.headers["UploadID"]
    assert str(uuid.UUID(upload_id)) == upload_id
    stored = sim.uploads[upload_id]
    assert (stored.field_name, stored.filename, stored.content) == (
        "file",
        "rt-ticket-history.csv",
        b"a,b\r\n1,2\r\n",
    )


def test_upload_that_is_not_a_multipart_file_is_refused_with_header_and_html(sim):
    response = requests.post(f"{sim.url}/API/Upload", data=b"a,b\r\n1,2\r\n", timeout=5)

    assert response.status_code == 400
    assert "multipart file upload" in response.headers["X-ErrorMessage"]
    assert "<b>The request must be a multipart file upload" in response.text
    assert "UploadID" not in response.headers
    assert sim.uploads == {}


def test_import_replaces_the_data_set_and_answers_success(sim):
    new = b"ticket_id,status\r\n1,resolved\r\n2,resolved\r\n3,open\r\n"
    upload_id = upload(sim, new)

    response = import_data(sim, upload_id=upload_id)

    assert response.status_code == 200
    assert "Success" in response.text
    assert "X-ErrorMessage" not in response.headers
    assert sim.data_set(SECRET, DATA_NAME) == new
    assert sim.imports == [
        {
            "data_name": DATA_NAME,
            "upload_id": upload_id,
            "partial": False,
            "abort": "OnWarning",
            "rows": 3,
            "accepted": True,
            "warnings": [],
        }
    ]


def test_import_of_the_same_upload_twice_is_idempotent(sim):
    new = b"ticket_id,status\r\n1,resolved\r\n2,resolved\r\n3,open\r\n"
    upload_id = upload(sim, new)

    first, second = import_data(sim, upload_id=upload_id), import_data(sim, upload_id=upload_id)

    assert (first.status_code, second.status_code) == (200, 200)
    assert sim.data_set(SECRET, DATA_NAME) == new


def test_partial_import_appends_the_new_cases(sim):
    upload_id = upload(sim, b"ticket_id,status\r\n3,new\r\n")

    response = import_data(sim, upload_id=upload_id, partial="true")

    assert "Success" in response.text
    assert sim.data_set(SECRET, DATA_NAME) == INITIAL + b"3,new\r\n"
    assert sim.imports[-1]["partial"] is True


def test_partial_import_with_other_columns_is_refused(sim):
    upload_id = upload(sim, b"ticket_id,queue\r\n3,General\r\n")

    response = import_data(sim, upload_id=upload_id, partial="true")

    assert response.status_code == 400
    assert "same variables" in response.headers["X-ErrorMessage"]
    assert sim.data_set(SECRET, DATA_NAME) == INITIAL


@pytest.mark.parametrize(
    ("new", "warning"),
    [
        (b"ticket_id,queue\r\n1,General\r\n2,General\r\n", "Variables removed: status"),
        (b"ticket_id,status,queue\r\n1,open,G\r\n2,open,G\r\n", "New variables: queue"),
        (b"ticket_id,status\r\n1,open\r\n", "fewer cases (1) than the data set (2)"),
    ],
)
def test_warning_aborts_with_on_warning_and_is_accepted_with_never(sim, new, warning):
    upload_id = upload(sim, new)

    aborted = import_data(sim, upload_id=upload_id, abort="OnWarning")

    assert aborted.status_code == 200
    assert "Success" not in aborted.text
    assert "X-ErrorMessage" not in aborted.headers
    assert "<b>Import aborted because of warnings" in aborted.text
    assert warning in aborted.text
    assert sim.data_set(SECRET, DATA_NAME) == INITIAL
    assert sim.imports[-1]["accepted"] is False

    accepted = import_data(sim, upload_id=upload_id, abort="Never")

    assert "Success" in accepted.text
    assert warning in accepted.text
    assert sim.data_set(SECRET, DATA_NAME) == new


@pytest.mark.parametrize("missing", ["project", "data_name", "upload_id"])
def test_import_without_a_required_parameter_is_a_bad_request(sim, missing):
    upload_id = upload(sim, INITIAL)
    params: dict[str, str | None] = {"upload_id": upload_id, missing: None}

    response = import_data(sim, **params)  # type: ignore[arg-type]

    assert response.status_code == 400
    assert response.headers["X-ErrorMessage"] == f"Missing required parameter '{missing}'."
    assert f"<b>Missing required parameter &#x27;{missing}&#x27;.</b>" in response.text


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("partial", "yes", "Parameter 'partial' must be true or false."),
        ("abort", "Always", "Parameter 'abort' must be one of OnWarning, Never."),
        ("upload_id", "12345", "Parameter 'upload_id' is not valid: it is not a GUID."),
    ],
)
def test_import_with_an_invalid_value_is_a_bad_request(sim, name, value, message):
    upload_id = upload(sim, INITIAL)
    params = {"upload_id": upload_id, name: value}

    response = import_data(sim, **params)

    assert response.status_code == 400
    assert response.headers["X-ErrorMessage"] == message


def test_import_with_parameters_in_the_body_is_refused(sim):
    upload_id = upload(sim, INITIAL)

    response = requests.post(
        f"{sim.url}/API/ImportUpdatedData",
        data={"project": SECRET, "data_name": DATA_NAME, "upload_id": upload_id},
        timeout=5,
    )

    assert response.status_code == 400
    assert "the request body must be empty" in response.headers["X-ErrorMessage"]
    assert sim.imports == []


def test_malformed_project_secret_is_not_a_guid(sim):
    response = import_data(sim, project="not-a-secret", upload_id=upload(sim, INITIAL))

    assert response.status_code == 400
    assert response.headers["X-ErrorMessage"].endswith("it is not a GUID.")
    assert "not-a-secret" not in response.text + response.headers["X-ErrorMessage"]


def test_unknown_project_secret_is_not_found_and_not_echoed(sim):
    other = str(uuid.uuid4())

    response = import_data(sim, project=other, upload_id=upload(sim, INITIAL))

    assert response.status_code == 404
    assert response.headers["X-ErrorMessage"] == "No document matches the project secret."
    assert "<b>No document matches the project secret.</b>" in response.text
    assert other not in response.text


def test_unknown_data_set_is_not_found(sim):
    response = import_data(sim, data_name="other.csv", upload_id=upload(sim, INITIAL))

    assert response.status_code == 404
    assert "no data set named 'other.csv'" in response.headers["X-ErrorMessage"]
    assert "<b>" in response.text


def test_unknown_upload_id_is_reported_only_in_the_header(sim):
    response = import_data(sim, upload_id=str(uuid.uuid4()))

    assert response.status_code == 404
    assert "was not found; upload the file again" in response.headers["X-ErrorMessage"]
    assert response.content == b""


def test_uploaded_file_that_is_not_csv_is_refused_at_import(sim):
    upload_id = upload(sim, b"\xff\xfe\x00garbage")

    response = import_data(sim, upload_id=upload_id)

    assert response.status_code == 400
    assert "Could not read the uploaded file as CSV" in response.headers["X-ErrorMessage"]


def test_other_methods_and_paths_are_errors(sim):
    assert requests.get(f"{sim.url}/API/Upload", timeout=5).status_code == 405
    missing = requests.post(f"{sim.url}/API/Nope", timeout=5)
    assert missing.status_code == 404
    assert "Unknown API method" in missing.headers["X-ErrorMessage"]


def test_requests_are_recorded_and_logged_without_the_secret(sim, caplog):
    caplog.set_level(logging.DEBUG, logger="rt_displayr.sandbox.displayr_server")
    upload_id = upload(sim, INITIAL)

    import_data(sim, upload_id=upload_id)

    recorded = sim.requests[-1]
    assert recorded.query["project"] == [MASK]
    assert recorded.body_length == 0
    assert "project=***" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(sim.requests) + repr(sim.imports) + repr(sim)


def test_injected_faults_are_used_in_order_then_normal_service_resumes(sim):
    sim.inject("upload", "http500", times=2)
    sim.inject("upload", "http503")
    url = f"{sim.url}/API/Upload"
    files = {"file": (DATA_NAME, INITIAL, "text/csv")}

    statuses = [requests.post(url, files=files, timeout=5) for _ in range(4)]

    assert [r.status_code for r in statuses] == [500, 500, 503, 200]
    assert "<b>Internal server error (injected).</b>" in statuses[0].text
    assert "X-ErrorMessage" not in statuses[0].headers
    assert statuses[2].headers["Retry-After"] == "1"
    assert statuses[2].content == b""
    assert "UploadID" in statuses[3].headers


def test_no_upload_id_fault_answers_200_without_the_header(sim):
    sim.inject("upload", "no_upload_id")

    response = requests.post(
        f"{sim.url}/API/Upload", files={"file": (DATA_NAME, INITIAL, "text/csv")}, timeout=5
    )

    assert response.status_code == 200
    assert "UploadID" not in response.headers


def test_reset_fault_drops_the_connection(sim):
    sim.inject("import", "reset")

    with pytest.raises(requests.ConnectionError):
        import_data(sim, upload_id=upload(sim, INITIAL))
    assert sim.imports == []


def test_hang_fault_times_the_client_out_and_stop_still_returns():
    simulator = DisplayrSimulator([SECRET]).start()
    try:
        simulator.inject("upload", "hang")
        with pytest.raises(requests.ReadTimeout):
            requests.post(
                f"{simulator.url}/API/Upload",
                files={"file": (DATA_NAME, INITIAL, "text/csv")},
                timeout=0.3,
            )
        url = simulator.url
    finally:
        simulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/API/Upload", timeout=2)


def test_inject_rejects_unknown_endpoints_and_faults(sim):
    with pytest.raises(ValueError, match="endpoint"):
        sim.inject("delete", "http500")
    with pytest.raises(ValueError, match="fault"):
        sim.inject("upload", "explode")
    with pytest.raises(ValueError, match="upload endpoint"):
        sim.inject("import", "no_upload_id")


def test_url_is_loopback_only_while_running():
    simulator = DisplayrSimulator([SECRET])
    with pytest.raises(RuntimeError):
        _ = simulator.url
    with simulator:
        assert simulator.url.startswith("http://127.0.0.1:")


def test_cli_serves_until_sigterm_and_never_prints_the_secret(tmp_path):
    env = {**os.environ, "DISPLAYR_PROJECT_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "rt_displayr.sandbox.displayr_server", "--data-name", DATA_NAME],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        upload_response = requests.post(
            f"{url}/API/Upload", files={"file": (DATA_NAME, INITIAL, "text/csv")}, timeout=5
        )
        response = requests.post(
            f"{url}/API/ImportUpdatedData",
            params={
                "project": SECRET,
                "data_name": DATA_NAME,
                "upload_id": upload_response.headers["UploadID"],
            },
            timeout=5,
        )
        assert "Success" in response.text
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert SECRET not in out + err
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/API/Upload", timeout=2)


def test_closed_port_is_really_closed_after_context_exit():
    with DisplayrSimulator([SECRET]) as simulator:
        host, port = simulator.url.removeprefix("http://").split(":")
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(2)
        probe.connect((host, int(port)))
