"""When Prefect should retry a task: only for failures that can pass.

The HTTP clients already retry each request with backoff; a task-level retry covers a longer
outage (RT restarting, a proxy flapping). An authentication error, bad TicketSQL, a validation
failure or a Displayr rejection would fail the same way again, so those end the run at once.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from rt_displayr.errors import TransientError

TASK_RETRIES = 3
TASK_RETRY_DELAYS = exponential_backoff(backoff_factor=10)
TASK_RETRY_JITTER = 0.5


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False
