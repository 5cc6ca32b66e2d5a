from __future__ import annotations

import pytest

from rt_displayr.errors import PublishRefused
from rt_displayr.guard import check_publishable


def test_empty_is_refused_and_names_the_override() -> None:
    with pytest.raises(PublishRefused) as caught:
        check_publishable(0, 120)
    message = str(caught.value)
    assert "empty" in message
    assert "120" in message
    assert "--allow-empty" in message
    assert "\n" not in message


def test_empty_is_refused_even_on_the_first_run() -> None:
    with pytest.raises(PublishRefused, match=r"nothing published yet.*--allow-empty"):
        check_publishable(0, None)


def test_empty_is_published_when_allowed() -> None:
    check_publishable(0, 120, allow_empty=True)
    check_publishable(0, None, allow_empty=True)


def test_sharp_drop_is_refused_with_the_numbers() -> None:
    with pytest.raises(PublishRefused) as caught:
        check_publishable(40, 100)
    assert str(caught.value) == (
        "refusing to publish 40 rows: 60.0% fewer than the 100 last published (limit 50%); "
        "pass --allow-shrink to publish anyway"
    )


def test_drop_is_published_when_allowed() -> None:
    check_publishable(1, 100_000, allow_shrink=True)


def test_drop_at_the_limit_is_allowed_and_just_beyond_is_not() -> None:
    check_publishable(50, 100)
    with pytest.raises(PublishRefused):
        check_publishable(49, 100)


def test_max_drop_is_configurable() -> None:
    check_publishable(95, 100, max_drop=0.05)
    with pytest.raises(PublishRefused, match=r"limit 5%"):
        check_publishable(94, 100, max_drop=0.05)
    check_publishable(1, 100, max_drop=1.0)


@pytest.mark.parametrize(("rows", "last"), [(10, None), (10, 0), (100, 100), (500, 100)])
def test_first_run_steady_and_growing_sets_pass(rows: int, last: int | None) -> None:
    check_publishable(rows, last)


def test_allow_shrink_does_not_allow_empty() -> None:
    with pytest.raises(PublishRefused, match="--allow-empty"):
        check_publishable(0, 100, allow_shrink=True)


@pytest.mark.parametrize(("rows", "max_drop"), [(-1, 0.5), (10, 1.5), (10, -0.1)])
def test_nonsense_arguments_are_programming_errors(rows: int, max_drop: float) -> None:
    with pytest.raises(ValueError):
        check_publishable(rows, 100, max_drop=max_drop)
