#!/usr/bin/env bash
# The README's test command (python -m pytest -q) while every core is kept busy by CPU burners
# this script starts and always stops: the suite must not race the clock on a loaded machine.
#
#   tests/load.sh [--repeat N] [pytest args...]    # N runs in a row (default 3), stops at the first failure
#
# Run it from the activated venv (or set PYTHON to the interpreter). Not part of .ci/run:
# the suite under load takes several times its usual wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=3
if [ "${1:-}" = "--repeat" ]; then
    if [ $# -lt 2 ] || ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
        echo "tests/load.sh: --repeat takes a positive whole number, got '${2:-}'" >&2
        exit 2
    fi
    repeat=$2
    shift 2
fi

cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
burners=()
stop_burners() {
    if [ ${#burners[@]} -gt 0 ]; then
        kill "${burners[@]}" 2>/dev/null || true
        wait "${burners[@]}" 2>/dev/null || true
    fi
}
trap stop_burners EXIT
trap 'exit 130' INT TERM  # Ctrl-C: the EXIT trap still stops the burners
for _ in $(seq "$cores"); do
    # One core each, in a session of its own like another user's job: with the kernel's
    # autogroup scheduling a burner in the test's session would only starve Ray's workers
    # (nice 15) instead of sharing the cores with the suite. Killed by pid on exit.
    setsid bash -c 'while :; do :; done' &
    burners+=($!)
done
echo "tests/load.sh: $cores CPU burner(s) started (pids ${burners[*]}); $repeat run(s) of: python -m pytest -q $*" >&2

for run in $(seq "$repeat"); do
    start=$SECONDS
    if "${PYTHON:-python}" -m pytest -q "$@"; then
        echo "tests/load.sh: run $run/$repeat passed under load in $((SECONDS - start)) s" >&2
    else
        status=$?
        echo "tests/load.sh: run $run/$repeat FAILED under load (pytest exit $status) after $((SECONDS - start)) s" >&2
        exit "$status"
    fi
done
echo "tests/load.sh: all $repeat run(s) passed under load" >&2
