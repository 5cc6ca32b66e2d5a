#!/usr/bin/env bash
# One command on a fresh machine: set up, bring in a real RT 5 where we may (root + apt), run
# every test. Without root the integration tests skip with one line saying why; CI forces them.
source "$(dirname "$0")/bootstrap.sh"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    uv run python tests/integration/rt5.py install
elif [ "${CI:-}" = true ] || [ "${RT_DISPLAYR_INTEGRATION:-}" = 1 ]; then
    echo "error: the integration tests need root and apt-get to install Debian's request-tracker5" >&2
    exit 1
fi
exec uv run pytest "$@"
