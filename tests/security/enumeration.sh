#!/bin/sh
# A short run: the answers must be identical; the timing is printed, not asserted.
exec python3 "$(dirname "$0")/enum_timing.py" -n 20
