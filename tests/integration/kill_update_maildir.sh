#!/bin/sh
exec python3 "$(dirname "$0")/kill_update_maildir.py"
