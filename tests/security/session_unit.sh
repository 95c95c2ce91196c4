#!/bin/sh
exec python3 "$(dirname "$0")/session_unit.py"
