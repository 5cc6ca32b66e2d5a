"""Resolve settings from the environment first, then from Prefect Secret blocks and Variables.

Deployments keep secrets in Secret blocks and plain settings in Variables so that nothing
sensitive is written inline into `prefect.yaml` or a flow run's parameters; a local run just
uses environment variables. Whatever the source, the same validation in
`rt_displayr.settings` gives the one-line error that names the missing or malformed setting.
"""

from __future__ import annotations

import os
from typing import cast

from rt_displayr.errors import ConfigError
from rt_displayr.settings import (
    DisplayrConnection,
    RTConnection,
    data_name_from_env,
    displayr_connection_from_env,
    rt_connection_from_env,
)

SECRET_BLOCKS = {
    "RT_PASSWORD": "rt-password",
    "RT_TOKEN": "rt-token",
    "RT_COOKIE": "rt-cookie",
    "DISPLAYR_PROJECT_SECRET": "displayr-project-secret",
}
VARIABLES = {
    "RT_URL": "rt_url",
    "RT_USER": "rt_user",
    "DISPLAYR_URL": "displayr_url",
    "DISPLAYR_DATA_NAME": "displayr_data_name",
}


def _from_prefect(env_name: str) -> str | None:
    """Look a setting up in Prefect only when the environment lacks it (each lookup is an API call)."""
    if os.environ.get("RT_DISPLAYR_NO_PREFECT_CONFIG"):
        return None
    try:
        if env_name in SECRET_BLOCKS:
            from prefect.blocks.system import Secret

            block = cast("Secret[str]", Secret.load(SECRET_BLOCKS[env_name]))
            return str(block.get())
        from prefect.variables import Variable

        value = Variable.get(VARIABLES[env_name], default=None)
        return None if value is None else str(value)
    except Exception:
        # Not defined, or no Prefect API reachable (a local run without a server): the setting
        # stays missing and the validation below names it.
        return None


def settings_environment(names: tuple[str, ...]) -> dict[str, str]:
    """The environment, completed from Prefect for the named settings it does not have."""
    env = dict(os.environ)
    for name in names:
        if not (env.get(name) or "").strip():
            value = _from_prefect(name)
            if value:
                env[name] = value
    return env


def resolve_rt_connection() -> RTConnection:
    """RT settings; Secret blocks are consulted only when the environment names no credential,
    so that a stray block never adds a second auth method to a run configured by env."""
    env_has_credential = any(
        (os.environ.get(name) or "").strip() for name in ("RT_PASSWORD", "RT_TOKEN", "RT_COOKIE")
    )
    names: tuple[str, ...] = ("RT_URL", "RT_USER")
    if not env_has_credential:
        names += ("RT_PASSWORD", "RT_TOKEN", "RT_COOKIE")
    return rt_connection_from_env(settings_environment(names))


def resolve_displayr_connection() -> DisplayrConnection:
    return displayr_connection_from_env(
        settings_environment(("DISPLAYR_URL", "DISPLAYR_PROJECT_SECRET"))
    )


def resolve_data_name(explicit: str | None) -> str:
    if explicit:
        if "/" in explicit or "\\" in explicit:
            raise ConfigError(f"data_name must be a data set name, not a path: {explicit!r}")
        return explicit
    return data_name_from_env(settings_environment(("DISPLAYR_DATA_NAME",)))
