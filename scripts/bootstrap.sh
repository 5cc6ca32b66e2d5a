# Sourced by the other scripts: makes sure uv and the locked environment are there.
# A fresh machine has python3 and pip only; uv comes from PyPI, the packages from uv.lock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --quiet
# No network but the package registries: Prefect's server must not try to send telemetry.
export PREFECT_SERVER_ANALYTICS_ENABLED=false
