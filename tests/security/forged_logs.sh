#!/bin/sh
exec python3 "$(dirname "$0")/forged_logs.py"
