"""Keep secrets out of every line a run emits.

The Displayr project secret must ride in a URL query string (`/API/ImportUpdatedData?project=...`),
so any library that logs or raises with the URL (requests, urllib3) would leak it. Secrets are
registered once when settings load; `redact` scrubs them from text and `install_log_redaction`
puts a filter on the root handlers and the chatty HTTP loggers.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
# The query parameter itself, whatever its value, in case a secret was never registered.
_PROJECT_PARAM = re.compile(r"(project=)[^&\s'\"]+", re.IGNORECASE)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that `redact` removes it. Short values are ignored (too noisy)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret, and any `project=` query value, with `***`."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _PROJECT_PARAM.sub(rf"\g<1>{MASK}", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message in place so that no handler (console, Prefect API) sees a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is scrubbed once here.
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the filter to the loggers that can see URLs or exception text. Idempotent."""
    for name in ("", "urllib3", "urllib3.connectionpool", "requests", "prefect", "httpx"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
