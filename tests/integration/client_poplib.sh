#!/bin/sh
exec python3 "$(dirname "$0")/client_poplib.py"
