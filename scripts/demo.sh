#!/usr/bin/env bash
# One command on a fresh machine: set up, then run the whole flow against the built-in sandbox
# (an RT REST 1.0 simulator and a Displayr API simulator on 127.0.0.1). Nothing to configure.
source "$(dirname "$0")/bootstrap.sh"
exec uv run rt-displayr demo "$@"
