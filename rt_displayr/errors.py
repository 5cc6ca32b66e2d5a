"""Typed failures. Each message is one line that names what is wrong and never carries a secret.

`TransientError` is the only family that is retried (by the HTTP clients and by Prefect task
retries): authentication failures, bad TicketSQL, validation failures and Displayr rejections are
final, because repeating them only delays the one line the operator needs to read.
"""

from __future__ import annotations


class RtDisplayrError(Exception):
    """Base of every failure this tool reports on purpose."""


class TransientError(RtDisplayrError):
    """Worth retrying: a connection error, a timeout, HTTP 429/5xx, a truncated body."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(RtDisplayrError):
    """A setting is missing or malformed; raised before any request is made."""


class RTError(RtDisplayrError):
    """RT answered, and the answer is an error."""


class RTAuthError(RTError):
    """Wrong user/password or a rejected token: final, never retried."""


class RTSessionExpired(RTError):
    """A bare `401 Credentials required`: the session (or cookie) is missing or no longer valid."""


class RTQueryError(RTError):
    """RT rejected the TicketSQL (`400 Bad request` + `Invalid query: ...`)."""


class RTTicketUnavailable(RTError):
    """`# Ticket N does not exist.` or `# You are not allowed to display ticket N.`"""

    def __init__(self, message: str, ticket_id: int | None = None) -> None:
        super().__init__(message)
        self.ticket_id = ticket_id


class RTProtocolError(RTError):
    """A body that is not RT's REST 1.0 format (no status line, an HTML page from a proxy)."""


class RTTransientError(TransientError, RTError):
    """RT (or a proxy in front of it) failed in a way that may pass: retried with backoff."""


class DisplayrError(RtDisplayrError):
    """Displayr answered with an error."""


class DisplayrRejected(DisplayrError):
    """Displayr refused the upload or import (bad secret, unknown data set, import warning)."""


class DisplayrTransientError(TransientError, DisplayrError):
    """Displayr failed in a way that may pass (5xx, connection): retried."""


class ValidationFailed(RtDisplayrError):
    """The metrics frame broke the schema; nothing is written over the last good CSV or uploaded."""


class PublishRefused(RtDisplayrError):
    """A run would publish an empty or sharply shrunk data set and was not explicitly allowed to."""
