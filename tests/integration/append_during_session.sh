#!/bin/sh
exec python3 "$(dirname "$0")/append_during_session.py"
