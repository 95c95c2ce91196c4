#!/bin/sh
exec python3 "$(dirname "$0")/side_files.py"
