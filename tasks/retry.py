"""When Prefect should retry a task: only for failures that can pass.

The HTTP clients already retry each request with backoff; a task-level retry covers a longer
outage (RT restarting, a proxy flapping). An authentication error, bad TicketSQL, a validation
failure or a Displayr rejection would fail the same way again, so those end the run at once.

The delays between task attempts (10, 20, 40 s, with jitter) are multiplied by
`RT_DISPLAYR_TASK_RETRY_DELAY_SCALE` (default 1), read once when this module is imported: Prefect
fixes a task's delays when the task is decorated. Tests set it small so a retried chunk costs
milliseconds; an operator behind a slow-to-restart RT can set it above 1.
"""

from __future__ import annotations

import os
from typing import Any

from prefect.tasks import exponential_backoff

from rt_displayr.errors import ConfigError, TransientError

TASK_RETRIES = 3
TASK_RETRY_JITTER = 0.5
RETRY_DELAY_SCALE_VARIABLE = "RT_DISPLAYR_TASK_RETRY_DELAY_SCALE"


def retry_delay_scale(env: dict[str, str] | None = None) -> float:
    """The factor applied to the task retry delays; a malformed value is a one-line ConfigError."""
    raw = ((os.environ if env is None else env).get(RETRY_DELAY_SCALE_VARIABLE) or "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        raise ConfigError(f"{RETRY_DELAY_SCALE_VARIABLE} must be a number, got {raw!r}") from None
    if scale < 0:
        raise ConfigError(f"{RETRY_DELAY_SCALE_VARIABLE} must be at least 0, got {raw!r}")
    return scale


def task_retry_delays(scale: float) -> list[float]:
    """Exponential delays (10 s, 20 s, 40 s at scale 1) for the `TASK_RETRIES` attempts."""
    return [delay * scale for delay in exponential_backoff(backoff_factor=10)(TASK_RETRIES)]


TASK_RETRY_DELAYS = task_retry_delays(retry_delay_scale())


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False
