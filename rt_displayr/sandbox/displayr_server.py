"""A local stand-in for Displayr's data-update API, for tests and dry rehearsals.

Displayr has no local edition, so this models the two documented calls as closely as the public
material allows, errors included:

* ``POST /API/Upload`` - "A normal (multipart) HTTP file upload, as per RFC 1867"; "Returns:
  Empty body. The "UploadID" response header contains the ID to be used in subsequent calls to
  the API" (https://app.displayr.com/API/Reference). No secret is needed to upload.
* ``POST /API/ImportUpdatedData?project=&data_name=&upload_id=&partial=&abort=`` - parameters
  "should be placed in the URI like a GET querystring, not in multipart/form-data in the request
  body" (same reference). It only updates a data set that already exists in the document;
  `create_data_set` models the one-time manual creation in Displayr's UI. ``partial`` is for
  uploading "just the new cases" (https://app.displayr.com/API), modelled as appending rows.

Error forms follow how Displayr's own R package flipAPI reads them (the ``X-ErrorMessage``
response header; "it is not a GUID" for a malformed project secret) and how a public Python
client reads them (``Success`` in the body, else the text of ``<b>...</b>`` in the HTML body).
Which status code goes with which error is not documented; the choice here is deliberate
variety so a client is exercised on every form:

==========================================  ======  ==================  =================
situation                                   status  ``X-ErrorMessage``  ``<b>`` in body
==========================================  ======  ==================  =================
missing/duplicate/invalid parameter,        400     yes                 yes
non-empty body, unreadable CSV
malformed project secret (not a GUID)       400     yes                 yes
unknown project secret                      404     yes                 yes
unknown data set in that project            404     yes                 yes
unknown upload id                           404     yes                 no (empty body)
import warning with ``abort=OnWarning``     200     no                  yes (no "Success")
success                                     200     no                  "Success ..."
==========================================  ======  ==================  =================

Assumptions, documented because the reference does not settle them: ``partial`` defaults to
false and ``abort`` to OnWarning when omitted; an upload id can be imported more than once (so a
full import repeated after a lost answer is idempotent); warnings are changed columns (added or
removed) and, for a full replacement, fewer data rows than the data set had; a partial update
must have the data set's exact columns.

Nothing here logs, stores or echoes a project secret: request lines are logged with ``project=``
masked and recorded query strings keep the parameter name only.
"""

from __future__ import annotations

import argparse
import csv
import email.parser
import email.policy
import html
import io
import logging
import os
import re
import signal
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rt_displayr.redact import MASK, redact

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/api/upload"
IMPORT_PATH = "/api/importupdateddata"
ENDPOINTS = ("upload", "import")
FAULTS = ("http500", "http503", "http429", "reset", "no_upload_id", "http400", "hang")
ABORT_MODES = ("OnWarning", "Never")
DATA_EXTENSIONS = (".csv", ".sav", ".xlsx", ".xls", ".txt", ".tsv")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file held in the simulated temporary storage."""

    upload_id: str
    field_name: str
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What a client sent, minus the secret: for tests that check the request's shape."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body_length: int


@dataclass(slots=True)
class _DataSet:
    header: list[str]
    rows: int
    content: bytes


@dataclass(slots=True)
class _Fault:
    name: str
    remaining: int


@dataclass(slots=True)
class _Reply:
    status: int
    message: str = ""
    header: bool = True
    body: bool = True
    extra_headers: dict[str, str] = field(default_factory=dict)


class _SimulatorError(Exception):
    """An error answer, raised inside request handling and turned into a response."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.message)
        self.reply = reply


class _Server(ThreadingHTTPServer):
    # join handler threads on close (stop() promises that) but never keep the process alive
    daemon_threads = True
    block_on_close = True
    simulator: DisplayrSimulator


class DisplayrSimulator:
    """Displayr's Upload and ImportUpdatedData on 127.0.0.1, with inspectable state and faults."""

    def __init__(
        self,
        secrets: list[str] | tuple[str, ...] = (),
        *,
        port: int = 0,
        hang_seconds: float = 30.0,
    ) -> None:
        self._projects: dict[str, dict[str, _DataSet]] = {s.lower(): {} for s in secrets}
        self._port = port
        self._hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: dict[str, list[_Fault]] = {name: [] for name in ENDPOINTS}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.uploads: dict[str, UploadedFile] = {}
        self.imports: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []

    def __repr__(self) -> str:
        return f"DisplayrSimulator(url={self.url if self._server else None!r})"

    # lifecycle

    def start(self) -> DisplayrSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="displayr-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung handlers, stop serving, close the socket and join every thread."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        self._stopping.set()
        try:
            server.shutdown()
        finally:
            server.server_close()
            if thread is not None:
                thread.join()

    def __enter__(self) -> DisplayrSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Displayr simulator is not running: call start()")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    # state, as the UI would set it up and as tests inspect it

    def add_project(self, secret: str) -> None:
        with self._lock:
            self._projects.setdefault(secret.lower(), {})

    def create_data_set(self, secret: str, name: str, csv_bytes: bytes = b"") -> None:
        """The one-time manual step in Displayr's UI; empty bytes means no columns known yet."""
        header, rows = _parse_csv(csv_bytes) if csv_bytes else ([], 0)
        with self._lock:
            project = self._projects.setdefault(secret.lower(), {})
            project[name] = _DataSet(header=header, rows=rows, content=csv_bytes)

    def data_set(self, secret: str, name: str) -> bytes:
        with self._lock:
            return self._projects[secret.lower()][name].content

    def inject(self, endpoint: str, fault: str, times: int = 1) -> None:
        """Make the next `times` calls to `endpoint` fail with `fault`, before any processing."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        if fault == "no_upload_id" and endpoint != "upload":
            raise ValueError("no_upload_id only applies to the upload endpoint")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults[endpoint].append(_Fault(fault, times))

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._faults.values():
                queue.clear()

    def _next_fault(self, endpoint: str) -> str | None:
        with self._lock:
            queue = self._faults[endpoint]
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault.name

    # the two API calls

    def _upload(self, content_type: str, body: bytes) -> _Reply:
        if not content_type.lower().startswith("multipart/form-data"):
            raise _bad_request(
                "The request must be a multipart file upload (RFC 1867) with the file in it."
            )
        files = list(_multipart_files(content_type, body))
        if len(files) != 1:
            raise _bad_request(
                f"Expected exactly one uploaded file in the multipart body, found {len(files)}."
            )
        field_name, filename, part_type, content = files[0]
        upload_id = str(uuid.uuid4())
        with self._lock:
            self.uploads[upload_id] = UploadedFile(
                upload_id, field_name, filename, part_type, content
            )
        return _Reply(HTTPStatus.OK, extra_headers={"UploadID": upload_id}, body=False)

    def _import(self, query: dict[str, list[str]], body: bytes) -> _Reply:
        if body:
            raise _bad_request(
                "Parameters must be placed in the URI like a GET querystring; "
                "the request body must be empty."
            )
        for name, values in query.items():
            if len(values) > 1:
                raise _bad_request(f"Parameter '{name}' was given more than once.")
        params = {name: values[0] for name, values in query.items()}
        for name in ("project", "data_name", "upload_id"):
            if not params.get(name, "").strip():
                raise _bad_request(f"Missing required parameter '{name}'.")
        secret, data_name, upload_id = params["project"], params["data_name"], params["upload_id"]
        partial_text = params.get("partial", "false")
        if partial_text.lower() not in ("true", "false"):
            raise _bad_request("Parameter 'partial' must be true or false.")
        partial = partial_text.lower() == "true"
        abort = params.get("abort", "OnWarning")
        if abort not in ABORT_MODES:
            raise _bad_request(f"Parameter 'abort' must be one of {', '.join(ABORT_MODES)}.")
        if not _GUID.match(secret):
            raise _bad_request(
                "The project parameter is not a valid project secret: it is not a GUID."
            )
        if not _GUID.match(upload_id):
            raise _bad_request("Parameter 'upload_id' is not valid: it is not a GUID.")

        with self._lock:
            project = self._projects.get(secret.lower())
            data_set = project.get(data_name) if project is not None else None
            upload = self.uploads.get(upload_id.lower())
        if project is None:
            raise _SimulatorError(
                _Reply(HTTPStatus.NOT_FOUND, "No document matches the project secret.")
            )
        if data_set is None:
            raise _SimulatorError(
                _Reply(
                    HTTPStatus.NOT_FOUND,
                    f"The document has no data set named '{data_name}'. Data sets are created in "
                    "Displayr first; the API only updates them.",
                )
            )
        if upload is None:
            raise _SimulatorError(
                _Reply(
                    HTTPStatus.NOT_FOUND,
                    f"Upload '{upload_id}' was not found; upload the file again.",
                    body=False,
                )
            )
        if not upload.filename.lower().endswith(DATA_EXTENSIONS):
            raise _bad_request(
                f"The uploaded file '{upload.filename}' is not a data file type Displayr reads."
            )
        try:
            header, rows = _parse_csv(upload.content)
        except ValueError as exc:
            raise _bad_request(f"Could not read the uploaded file as CSV: {exc}") from None

        entry: dict[str, Any] = {
            "data_name": data_name,
            "upload_id": upload_id,
            "partial": partial,
            "abort": abort,
            "rows": rows,
        }
        if partial and data_set.header and header != data_set.header:
            self._log_import(entry, accepted=False, warnings=[])
            raise _bad_request(
                f"A partial update must have the same variables as data set '{data_name}'."
            )
        warnings = [] if partial else _warnings(data_set, header, rows)
        if warnings and abort == "OnWarning":
            self._log_import(entry, accepted=False, warnings=warnings)
            return _Reply(
                HTTPStatus.OK,
                f"Import aborted because of warnings (abort=OnWarning): {' '.join(warnings)}",
                header=False,
            )
        with self._lock:
            if partial and data_set.content:
                data_set.content = _append_rows(data_set.content, upload.content)
                data_set.rows += rows
            else:
                data_set.content = upload.content
                data_set.rows = rows
            data_set.header = header
            total = data_set.rows
        self._log_import(entry, accepted=True, warnings=warnings)
        note = f" Warnings: {' '.join(warnings)}" if warnings else ""
        verb = "appended" if partial else "imported"
        return _Reply(
            HTTPStatus.OK,
            f"Success. Data set '{data_name}' updated: {rows} cases {verb}, {total} in total.{note}",
            header=False,
        )

    def _log_import(self, entry: dict[str, Any], *, accepted: bool, warnings: list[str]) -> None:
        with self._lock:
            self.imports.append({**entry, "accepted": accepted, "warnings": warnings})

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive thread delays stop()
    protocol_version = "HTTP/1.0"
    server_version = "DisplayrSimulator/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("displayr simulator: %s", redact(format % args))

    def do_GET(self) -> None:
        self._reply(
            _Reply(HTTPStatus.METHOD_NOT_ALLOWED, "The Displayr API methods are called with POST.")
        )

    def do_POST(self) -> None:
        simulator = self.server.simulator
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/").lower()
        query = parse_qs(parts.query, keep_blank_values=True)
        body = self._read_body()
        content_type = self.headers.get("Content-Type", "")
        simulator._record(
            RecordedRequest(
                method="POST",
                path=parts.path,
                query={k: ([MASK] if k == "project" else v) for k, v in query.items()},
                content_type=content_type,
                body_length=len(body),
            )
        )
        endpoint = {UPLOAD_PATH: "upload", IMPORT_PATH: "import"}.get(path)
        if endpoint is None:
            self._reply(_Reply(HTTPStatus.NOT_FOUND, f"Unknown API method '{parts.path}'."))
            return
        fault = simulator._next_fault(endpoint)
        if fault is not None and self._fault(fault):
            return
        try:
            if endpoint == "upload":
                reply = simulator._upload(content_type, body)
                if fault == "no_upload_id":
                    reply.extra_headers.pop("UploadID", None)
            else:
                reply = simulator._import(query, body)
        except _SimulatorError as exc:
            reply = exc.reply
        self._reply(reply)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _fault(self, fault: str) -> bool:
        """Act out a fault; True when the request is finished (no normal processing)."""
        simulator = self.server.simulator
        if fault == "http500":
            self._reply(_Reply(500, "Internal server error (injected).", header=False))
        elif fault == "http503":
            self._reply(
                _Reply(
                    503,
                    "Service temporarily unavailable (injected).",
                    body=False,
                    extra_headers={"Retry-After": "1"},
                )
            )
        elif fault == "http429":
            self._reply(
                _Reply(429, "Too many requests (injected).", extra_headers={"Retry-After": "2"})
            )
        elif fault == "http400":
            self._reply(_Reply(400, "Bad request (injected)."))
        elif fault == "reset":
            # RST instead of an answer: the client sees a reset / a connection closed mid-request
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif fault == "hang":
            simulator._stopping.wait(simulator._hang_seconds)
            self.close_connection = True
        else:
            return False  # no_upload_id: processed normally, the header dropped afterwards
        return True

    def _reply(self, reply: _Reply) -> None:
        body = b""
        if reply.body and reply.message:
            body = _html_page(reply.message).encode("utf-8")
        self.send_response(reply.status)
        if reply.header and reply.message:
            self.send_header("X-ErrorMessage", reply.message)
        for name, value in reply.extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def _bad_request(message: str) -> _SimulatorError:
    return _SimulatorError(_Reply(HTTPStatus.BAD_REQUEST, message))


def _html_page(message: str) -> str:
    text = html.escape(message)
    if message.startswith("Success"):
        return f"<html><body><p>{text}</p></body></html>"
    return f"<html><head><title>Displayr</title></head><body><p><b>{text}</b></p></body></html>"


def _multipart_files(content_type: str, body: bytes) -> Iterator[tuple[str, str, str, bytes]]:
    """(field name, file name, part content type, bytes) for each file part of a form upload."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return
    for part in message.iter_parts():
        filename = part.get_filename()
        if filename is None:
            continue
        name = part.get_param("name", header="content-disposition") or ""
        payload = part.get_payload(decode=True)
        yield (
            str(name),
            filename,
            part.get_content_type(),
            payload if isinstance(payload, bytes) else b"",
        )


def _parse_csv(content: bytes) -> tuple[list[str], int]:
    """Header and number of data rows; ValueError when the bytes are not a usable CSV."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None
    try:
        records = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise ValueError(str(exc)) from None
    if not records:
        raise ValueError("the file is empty")
    header = records[0]
    # R's write.csv puts its row names first under an empty header, and Displayr imports that
    # (the legacy data set was made so); any other unnamed or repeated column is refused.
    named = header[1:] if header and header[0] == "" else header
    if len(set(header)) != len(header) or any(not name.strip() for name in named):
        raise ValueError("the first row must hold unique, non-empty variable names")
    return header, len(records) - 1


def _warnings(existing: _DataSet, header: list[str], rows: int) -> list[str]:
    if not existing.header:
        return []
    found: list[str] = []
    removed = [name for name in existing.header if name not in header]
    added = [name for name in header if name not in existing.header]
    if removed:
        found.append(f"Variables removed: {', '.join(removed)}.")
    if added:
        found.append(f"New variables: {', '.join(added)}.")
    if rows < existing.rows:
        found.append(f"The new data has fewer cases ({rows}) than the data set ({existing.rows}).")
    return found


def _append_rows(existing: bytes, update: bytes) -> bytes:
    """The data set followed by the update's data rows (its header line dropped)."""
    body = update.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body, newline="")))[1:]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    base = existing if existing.endswith((b"\n", b"\r")) else existing + b"\r\n"
    return base + out.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the simulator as its own process until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--secret",
        default=os.environ.get("DISPLAYR_PROJECT_SECRET"),
        help="project secret (GUID) to accept; default $DISPLAYR_PROJECT_SECRET",
    )
    parser.add_argument("--data-name", action="append", default=[], help="data set to create")
    parser.add_argument("--csv", help="initial contents for the data sets (default: none yet)")
    args = parser.parse_args(argv)
    if not args.secret or not _GUID.match(args.secret):
        parser.error("--secret (or DISPLAYR_PROJECT_SECRET) must be a GUID")
    initial = b""
    if args.csv:
        with open(args.csv, "rb") as handle:
            initial = handle.read()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    simulator = DisplayrSimulator([args.secret], port=args.port)
    for name in args.data_name or ["rt-ticket-history.csv"]:
        simulator.create_data_set(args.secret, name, initial)
    with simulator:
        print(simulator.url, flush=True)
        while not done.wait(0.5):
            pass
    print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
