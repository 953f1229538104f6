#!/bin/sh
# The entry point the issues name; the benchmark itself is bench/artifacts.py (--help).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python="$here/../.venv/bin/python"
if [ ! -x "$python" ]; then
    echo "bench/artifacts.sh: no $python: run 'make setup' first" >&2
    exit 2
fi
exec "$python" "$here/artifacts.py" "$@"
