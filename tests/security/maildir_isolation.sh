#!/bin/sh
exec python3 "$(dirname "$0")/maildir_isolation.py"
