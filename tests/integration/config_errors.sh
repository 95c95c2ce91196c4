#!/bin/sh
exec python3 "$(dirname "$0")/config_errors.py"
