"""Publish a CSV to an existing Displayr data set through Displayr's two-call HTTP API.

What Displayr documents (API Reference at https://app.displayr.com/API/Reference and the
overview at https://app.displayr.com/API):

* ``POST /API/Upload`` takes "a normal (multipart) HTTP file upload, as per RFC 1867" (their curl
  example is ``--form "file=@blah.sav"``) and "Returns: Empty body. The "UploadID" response header
  contains the ID to be used in subsequent calls to the API". The upload carries no secret.
* ``POST /API/ImportUpdatedData`` updates a data set that already exists in a document. Its
  parameters "should be placed in the URI like a GET querystring, not in multipart/form-data in
  the request body", so the project secret rides in the query string and the body is empty.
  ``partial`` lets a caller upload "just the new cases", "but uploading everything every time is
  safer because you need not worry about failed or duplicated transfers" - so this client sends
  the whole file with ``partial=false`` by default.

How errors come back is not documented; it is read the way Displayr's own code and public
clients read it: Displayr's R package flipAPI (``stopBadRequest`` in R/DataMart.R and
``UpdateObject`` in R/UpdateDisplayrDoc.R) takes the message from the ``X-ErrorMessage`` response
header, and a public Python client of these same endpoints treats a body containing ``Success``
as success and otherwise shows the text between ``<b>`` and ``</b>`` in the HTML body.

Retries: only failures that may pass (connection errors, timeouts, HTTP 5xx, HTTP 429) are
repeated, with exponential backoff and jitter, honouring ``Retry-After``; a 4xx or an import that
Displayr refuses is final (`DisplayrRejected`) because repeating it only delays the one line the
operator needs. A full import (``partial=false``) replaces the data set with the uploaded file, so
repeating it after an ambiguous failure is idempotent and is retried. A partial import appends
rows, so after a failure that may have reached Displayr (reset, read timeout, 500/502/504) it is
not repeated: the error says the outcome is unknown instead of risking duplicated rows.

The project secret must never reach a log line, an exception, a traceback or a repr: requests
and urllib3 put the URL (with ``?project=...``) into their DEBUG logs and exception texts, so the
client installs the redacting log filter, builds its own one-line messages through `redact`, and
raises its errors outside the ``except`` block so that no requests exception is chained.
"""

from __future__ import annotations

import csv
import html
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from rt_displayr.errors import (
    ConfigError,
    DisplayrError,
    DisplayrRejected,
    DisplayrTransientError,
)
from rt_displayr.redact import MASK, install_log_redaction, redact, register_secret
from rt_displayr.settings import DisplayrConnection

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/API/Upload"
IMPORT_PATH = "/API/ImportUpdatedData"
UPLOAD_ID_HEADER = "UploadID"
ERROR_HEADER = "X-ErrorMessage"
UPLOAD_FIELD = "file"
ABORT_MODES = ("OnWarning", "Never")
SUCCESS_MARKER = "Success"

BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 300.0
MESSAGE_LIMIT = 300

_BOLD = re.compile(r"<b>(.*?)</b>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)


class DisplayrProtocolError(DisplayrError):
    """Displayr answered in a shape its API does not document (e.g. an upload without `UploadID`).

    Final, not retried: the same request would get the same answer, and the local CSV stays.
    """


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one publish did. `rows` is the number of data rows in the CSV (None if unreadable)."""

    data_name: str
    upload_id: str
    message: str
    rows: int | None


@dataclass(frozen=True, slots=True)
class _Failure:
    """One attempt that may pass if repeated.

    `maybe_applied` says whether Displayr may have acted on the request (it was sent and no
    "not processed" status came back): only then is repeating a partial import unsafe.
    """

    reason: str
    maybe_applied: bool
    retry_after: float | None = None


class DisplayrClient:
    """Upload a CSV and import it into an existing Displayr data set, without leaking the secret."""

    def __init__(
        self,
        conn: DisplayrConnection,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self._conn = conn
        self._sleep = sleep
        self._secret = conn.project_secret.get_secret_value()
        # settings registers secrets it loads; a connection built by hand must be covered too
        register_secret(self._secret)
        install_log_redaction()
        self._session = session or requests.Session()
        self._session.verify = conn.verify
        self._session.headers["User-Agent"] = "rt-displayr"

    def __repr__(self) -> str:
        return f"DisplayrClient(url={self._conn.url!r})"

    def __enter__(self) -> DisplayrClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def public_data_url(self, data_name: str) -> str:
        """The import URL as it may be shown to people: the project secret masked."""
        return f"{self._conn.url}{IMPORT_PATH}?project={MASK}&data_name={quote(data_name, safe='')}"

    def upload(self, csv_path: Path, data_name: str) -> str:
        """Upload the file to Displayr's temporary storage and return its upload id.

        The multipart file is named as the data set whatever the local path, so what Displayr
        sees does not depend on where a run wrote its output.
        """
        _check_data_name(data_name)
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"CSV to upload not found: {csv_path}")
        size = csv_path.stat().st_size
        logger.info(
            "Uploading %s (%d bytes) to %s%s as %r",
            csv_path,
            size,
            self._conn.url,
            UPLOAD_PATH,
            data_name,
        )

        def send() -> requests.Response:
            with csv_path.open("rb") as handle:
                return self._session.post(
                    self._conn.url + UPLOAD_PATH,
                    files={UPLOAD_FIELD: (data_name, handle, "text/csv")},
                    timeout=self._conn.timeout,
                    allow_redirects=False,
                )

        response = self._with_retries("upload", send, repeat_if_maybe_applied=True)
        with response:
            if response.status_code != 200:
                raise DisplayrRejected(
                    f"Displayr refused the upload of {data_name!r}: {_error_text(response)}"
                )
            upload_id = (response.headers.get(UPLOAD_ID_HEADER) or "").strip()
        if not upload_id:
            raise DisplayrProtocolError(
                f"Displayr answered the upload of {data_name!r} with HTTP 200 but no "
                f"{UPLOAD_ID_HEADER} header; nothing was imported and the local CSV is unchanged"
            )
        logger.info("Displayr stored the upload of %r as upload id %s", data_name, upload_id)
        return upload_id

    def import_updated_data(
        self, data_name: str, upload_id: str, *, partial: bool, abort: str
    ) -> str:
        """Replace (or, with `partial`, extend) the data set with an upload; return Displayr's text.

        `abort="OnWarning"` makes Displayr refuse an import that would warn (e.g. changed
        columns); `"Never"` imports anyway.
        """
        _check_data_name(data_name)
        _check_abort(abort)
        if not upload_id:
            raise ConfigError("an upload id is needed to import: call upload() first")
        logger.info(
            "Importing upload %s into Displayr data set %r (partial=%s, abort=%s) via %s",
            upload_id,
            data_name,
            partial,
            abort,
            self.public_data_url(data_name),
        )
        params = {
            "project": self._secret,
            "data_name": data_name,
            "upload_id": upload_id,
            "partial": "true" if partial else "false",
            "abort": abort,
        }

        def send() -> requests.Response:
            # data=b"" keeps the body empty: every parameter is in the query string
            return self._session.post(
                self._conn.url + IMPORT_PATH,
                params=params,
                data=b"",
                timeout=self._conn.timeout,
                allow_redirects=False,
            )

        response = self._with_retries("import", send, repeat_if_maybe_applied=not partial)
        with response:
            body = response.text
            if response.status_code == 200 and SUCCESS_MARKER in body:
                message = _one_line(_strip_html(body)) or SUCCESS_MARKER
                logger.info("Displayr imported into %r: %s", data_name, message)
                return message
            raise DisplayrRejected(
                f"Displayr refused the import into data set {data_name!r}: {_error_text(response)}"
            )

    def publish(
        self,
        csv_path: Path,
        data_name: str,
        *,
        partial: bool = False,
        abort: str = "OnWarning",
    ) -> PublishResult:
        """Upload then import; settings are checked before the first request."""
        _check_data_name(data_name)
        _check_abort(abort)
        csv_path = Path(csv_path)
        upload_id = self.upload(csv_path, data_name)
        message = self.import_updated_data(data_name, upload_id, partial=partial, abort=abort)
        return PublishResult(
            data_name=data_name,
            upload_id=upload_id,
            message=message,
            rows=count_csv_rows(csv_path),
        )

    def _with_retries(
        self,
        action: str,
        send: Callable[[], requests.Response],
        *,
        repeat_if_maybe_applied: bool,
    ) -> requests.Response:
        """Run `send` until it gets a final answer (any non-transient status) or retries run out."""
        attempts = max(0, self._conn.max_retries) + 1
        for attempt in range(1, attempts + 1):
            response, failure = self._attempt(send)
            if failure is None:
                assert response is not None
                return response
            if failure.maybe_applied and not repeat_if_maybe_applied:
                raise DisplayrError(
                    f"Displayr {action} failed ({failure.reason}) after the request may have "
                    "been applied; a partial import is not repeated because it could duplicate "
                    "rows: check the data set in Displayr, then publish the full file"
                )
            if attempt == attempts:
                raise DisplayrTransientError(
                    f"Displayr {action} failed after {attempts} attempt(s): {failure.reason}",
                    retry_after=failure.retry_after,
                )
            delay = _backoff(attempt, failure.retry_after, self._conn.backoff_base)
            logger.warning(
                "Displayr %s failed (%s); retry %d of %d in %.1fs",
                action,
                failure.reason,
                attempt,
                attempts - 1,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _attempt(
        send: Callable[[], requests.Response],
    ) -> tuple[requests.Response | None, _Failure | None]:
        failure: _Failure | None = None
        try:
            response = send()
        except requests.RequestException as exc:
            # described here, raised by the caller outside this block: no chained requests
            # exception (whose text can hold the URL) travels with the error
            failure = _describe_exception(exc)
        if failure is not None:
            return None, failure
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers)
            reason = f"HTTP {status}: {_error_text(response)}"
            response.close()
            # 429 and 503 say the request was turned away before it was processed
            return None, _Failure(
                reason, maybe_applied=status not in (429, 503), retry_after=retry_after
            )
        return response, None


def count_csv_rows(csv_path: Path) -> int | None:
    """Data rows (not counting the header) as a CSV reader sees them; None if unreadable."""
    try:
        with Path(csv_path).open(newline="", encoding="utf-8-sig") as handle:
            total = sum(1 for _ in csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return max(total - 1, 0)


def _check_abort(abort: str) -> None:
    if abort not in ABORT_MODES:
        raise ConfigError(f"abort must be one of {', '.join(ABORT_MODES)}, got {abort!r}")


def _check_data_name(data_name: str) -> None:
    if not data_name or not data_name.strip():
        raise ConfigError("the Displayr data set name is empty")
    if "/" in data_name or "\\" in data_name:
        raise ConfigError(f"the Displayr data set name must not be a path: {data_name!r}")


def _describe_exception(exc: requests.RequestException) -> _Failure:
    """One redacted line for a requests failure, and whether the request may have reached Displayr."""
    if isinstance(exc, requests.ConnectTimeout):
        return _Failure("connect timeout", maybe_applied=False)
    if isinstance(exc, requests.Timeout):
        return _Failure("read timeout: no answer in time", maybe_applied=True)
    if isinstance(exc, requests.ConnectionError):
        never_connected = _caused_by(exc, NewConnectionError)
        kind = "could not connect" if never_connected else "connection error"
        return _Failure(
            f"{kind}: {_one_line(redact(_root_text(exc)))}", maybe_applied=not never_connected
        )
    return _Failure(f"{type(exc).__name__}: {_one_line(redact(str(exc)))}", maybe_applied=True)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return True
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
            stack.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return False


def _root_text(exc: BaseException) -> str:
    """The innermost reason (e.g. `Connection reset by peer`), not urllib3's URL-bearing wrapper."""
    current: Any = exc
    for _ in range(10):
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        inner = next(
            (a for a in getattr(current, "args", ()) if isinstance(a, BaseException)), None
        )
        if inner is None:
            break
        current = inner
    text = str(current) or type(current).__name__
    return f"{type(current).__name__}: {text}" if current is not exc else text


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - time.time()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _backoff(attempt: int, retry_after: float | None, base: float) -> float:
    """Exponential with jitter, so many runs failing together do not come back in step."""
    if retry_after is not None:
        return retry_after
    ceiling = min(BACKOFF_CAP, base * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _error_text(response: requests.Response) -> str:
    """Displayr's own words: `X-ErrorMessage` first (flipAPI), then `<b>...</b>` in the body."""
    header = response.headers.get(ERROR_HEADER)
    if header and header.strip():
        message = header
    else:
        body = _body_text(response)
        bold = _BOLD.search(body)
        message = _strip_html(bold.group(1)) if bold else ""
        if not message.strip():
            message = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location", "")
        message = f"redirected (HTTP {response.status_code}) to {location}: {message}"
    return _one_line(redact(message))


def _body_text(response: requests.Response) -> str:
    try:
        return response.text
    except (requests.RequestException, OSError):  # a body cut off mid-read
        return ""


def _strip_html(text: str) -> str:
    return html.unescape(_TAG.sub(" ", _SCRIPT_OR_STYLE.sub(" ", text)))


def _one_line(text: str) -> str:
    line = _SPACE.sub(" ", text).strip()
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."
