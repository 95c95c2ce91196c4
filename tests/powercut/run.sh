#!/bin/sh
# Random power-cut trials on pcfs: tests/powercut/run.sh [TRIALS [SEED]] (an mbox),
# tests/powercut/run.sh --maildir TRIALS [SEED] (a Maildir, tests/powercut/mdtrials.py)
# (needs root, /dev/fuse, python3-fusepy, and ./pop3d built: make pop3d).
# The last line: N trials, L lost, D duplicated, C corrupted, P partial, U unrecoverable
# (for a Maildir also: Q maildirsize wrong)
cd "$(dirname "$0")/../.." || exit 2
if [ "$1" = --maildir ]; then
	exec python3 tests/powercut/mdtrials.py stress "${2:-1000}" "${3:-1}"
fi
exec python3 tests/powercut/stress.py "${1:-1000}" "${2:-1}"
