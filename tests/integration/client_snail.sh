#!/bin/sh
# s-nail reading and emptying a POP3 maildrop; RFC 6856 UTF8 with Python's poplib.
command -v s-nail >/dev/null 2>&1 || { echo "skipped: s-nail is not installed (tests/deps.sh check)"; exit 77; }
command -v socat >/dev/null 2>&1 || { echo "skipped: socat is not installed"; exit 77; }
exec python3 "$(dirname "$0")/client_snail.py"
