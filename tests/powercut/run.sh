#!/bin/sh
# Random power-cut trials on pcfs: tests/powercut/run.sh [TRIALS [SEED]]
# (needs root, /dev/fuse, python3-fusepy, and ./pop3d built: make pop3d).
# The last line: N trials, L lost, D duplicated, C corrupted, P partial, U unrecoverable
cd "$(dirname "$0")/../.." || exit 2
exec python3 tests/powercut/stress.py "${1:-1000}" "${2:-1}"
