"""Step 5: write the CSV, upload it to Displayr, import it into the dashboard's data set.

Upload and import are separate tasks so the UI shows which one failed; each is retried only
for transient failures (the Displayr client already retries single requests). A rejection is
final and carries Displayr's own message with the project secret redacted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rt_displayr.csv_output import write_csv
from rt_displayr.displayr import DisplayrClient
from rt_displayr.settings import DisplayrConnection
from tasks.retry import TASK_RETRIES, TASK_RETRY_DELAYS, TASK_RETRY_JITTER, retry_on_transient


@task(name="write-csv", cache_policy=NO_CACHE)
def write_metrics_csv(frame: pd.DataFrame, output: str, row_numbers: bool = True) -> str:
    """Atomic: written beside the target and renamed, so the last good CSV survives any failure."""
    path = write_csv(frame, Path(output), row_numbers=row_numbers)
    get_run_logger().info("wrote %d rows to %s", len(frame), path)
    return str(path)


def pending_path(output: str) -> str:
    """Where a publishing run writes its CSV until Displayr has accepted it."""
    path = Path(output)
    return str(path.with_name(f"{path.stem}.pending{path.suffix or '.csv'}"))


@task(name="promote-csv", cache_policy=NO_CACHE)
def promote_csv(pending: str, output: str) -> str:
    """After a successful import the published CSV becomes the last good one (an atomic rename).

    Until then it waits beside it, so a rejected or failed publish leaves the last good CSV in
    place and the new one there to inspect.
    """
    os.replace(pending, output)
    return output


@task(
    name="upload-csv",
    task_run_name="upload-csv [{data_name}]",
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS,
    retry_jitter_factor=TASK_RETRY_JITTER,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def upload_csv(connection: DisplayrConnection, csv_path: str, data_name: str) -> str:
    with DisplayrClient(connection) as client:
        upload_id = client.upload(Path(csv_path), data_name)
    get_run_logger().info("uploaded %s as %s (upload id %s)", csv_path, data_name, upload_id)
    return upload_id


@task(
    name="import-data",
    task_run_name="import-data [{data_name}]",
    retries=TASK_RETRIES,
    retry_delay_seconds=TASK_RETRY_DELAYS,
    retry_jitter_factor=TASK_RETRY_JITTER,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
)
def import_data(
    connection: DisplayrConnection, data_name: str, upload_id: str, partial: bool, abort: str
) -> str:
    with DisplayrClient(connection) as client:
        message = client.import_updated_data(data_name, upload_id, partial=partial, abort=abort)
    get_run_logger().info("Displayr imported %s: %s", data_name, message)
    return message
