"""Refuse to publish a data set that is empty or far smaller than the last one published.

An RT outage that returns no tickets, a mistyped query or an expired permission all look like
"success, 0 rows" to the pipeline; published, they would blank the dashboard. Such a run stops
with one line naming the numbers and the option that lets a deliberate change through.
"""

from __future__ import annotations

from rt_displayr.errors import PublishRefused


def check_publishable(
    rows: int,
    last_published: int | None,
    *,
    max_drop: float = 0.5,
    allow_shrink: bool = False,
    allow_empty: bool = False,
) -> None:
    """Raise `PublishRefused` unless `rows` is safe to publish after `last_published`.

    Empty is refused unless `allow_empty` (which then suffices on its own: it is the explicit
    decision about this very case). Otherwise a drop of more than `max_drop` (a share, 0.5 =
    half) below the last published count is refused unless `allow_shrink`. With no earlier
    publication there is nothing to shrink from.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= max_drop <= 1.0:
        raise ValueError(f"max_drop must be a share between 0 and 1, got {max_drop}")
    before = f"last published {last_published} rows" if last_published else "nothing published yet"
    if rows == 0:
        if allow_empty:
            return
        raise PublishRefused(
            f"refusing to publish an empty data set ({before}); "
            "pass --allow-empty to publish it anyway"
        )
    if not last_published or rows >= last_published:
        return
    drop = (last_published - rows) / last_published
    if drop > max_drop and not allow_shrink:
        raise PublishRefused(
            f"refusing to publish {rows} rows: {drop:.1%} fewer than the {last_published} last "
            f"published (limit {max_drop * 100:g}%); pass --allow-shrink to publish anyway"
        )
