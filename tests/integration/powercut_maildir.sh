#!/bin/sh
exec python3 "$(dirname "$0")/powercut_maildir.py"
