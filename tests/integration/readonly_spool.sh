#!/bin/sh
exec python3 "$(dirname "$0")/readonly_spool.py"
