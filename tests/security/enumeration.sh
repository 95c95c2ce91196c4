#!/bin/sh
# Unknown user vs wrong password: identical answers, and the same answer time
# with mixed hash kinds in a --passwd file and, as root, in /etc/shadow.
exec python3 "$(dirname "$0")/enum_timing.py" --check
