"""Steps 3 and 4: derive one row per ticket, then validate the frame before anything is written."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from rt_displayr.metrics import (
    is_staff_by_name,
    metrics_frame,
    privileged_staff_rule,
)
from rt_displayr.models import TicketFacts
from rt_displayr.schema import validate_metrics

VALIDATION_ARTIFACT_KEY = "rt-displayr-validation"


@task(name="build-metrics", cache_policy=NO_CACHE)
def build_metrics(facts: list[TicketFacts], privileged: list[str] | None = None) -> pd.DataFrame:
    """Step 3. `privileged` (RT's privileged user names) replaces the no-`@` staff rule when given."""
    rule = is_staff_by_name if privileged is None else privileged_staff_rule(privileged)
    frame = metrics_frame(facts, rule)
    get_run_logger().info("derived %d rows", len(frame))
    return frame


@task(name="validate-metrics", cache_policy=NO_CACHE)
def validate_metrics_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Step 4. A frame that fails is never written or uploaded; the report goes to an artifact."""
    try:
        return validate_metrics(frame)
    except Exception as exc:
        report = getattr(exc, "report_markdown", None)
        if report:
            create_markdown_artifact(
                markdown=report,
                key=VALIDATION_ARTIFACT_KEY,
                description="Checks and rows that failed validation; nothing was published",
            )
        raise
