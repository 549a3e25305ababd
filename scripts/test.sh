#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs pytest.
#
# Most of the suite waits on real time (jams at tempo, JACK servers, brokers), so it runs
# as two pytest processes at once: the tests marked `realtime` (JACK and the engine rig)
# at normal priority, the rest beside them at a lower one, so that their CPU work cannot
# make a JACK client miss its cycle; a realtime test that fails is run once more, and its
# first failure is printed in full at the end all the same (tests/conftest.py). The
# realtime tests run in one pytest-xdist worker, so that a crash inside libjack (a race
# in jack2 itself, improv/io/midi/rtmidi_ports.py: JACK_SETTLE_S) costs a new worker
# and that test's rerun, not the rest of the run. With arguments, one plain pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
pytest=(.venv/bin/python -m pytest -q)
if (($#)); then
  exec "${pytest[@]}" "$@"
fi

rest_log=$(mktemp)
trap 'rm -f "$rest_log"' EXIT
# (one cache writer: the rest leave .pytest_cache alone)
nice -n 10 "${pytest[@]}" -p no:cacheprovider -m "not bench and not realtime" >"$rest_log" 2>&1 &
rest=$!
realtime_status=0
echo "== realtime tests (JACK, engine rig); the rest run beside them =="
"${pytest[@]}" -m "not bench and realtime" -n 1 --reruns 1 -rR || realtime_status=$?
rest_status=0
wait "$rest" || rest_status=$?
echo "== the rest =="
cat "$rest_log"
if ((realtime_status || rest_status)); then
  echo "FAILED: realtime tests exit $realtime_status, the rest exit $rest_status" >&2
  exit 1
fi
