#!/bin/sh
# The entry points the issues name: bench/artifacts.sh and bench/load.sh (a link to this
# file) run bench/artifacts.py and bench/load.py with the project's .venv (--help).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$0" .sh)
python="$here/../.venv/bin/python"
if [ ! -x "$python" ]; then
    echo "bench/$name.sh: no $python: run 'make setup' first" >&2
    exit 2
fi
exec "$python" "$here/$name.py" "$@"
