#!/bin/sh
exec python3 "$(dirname "$0")/disk_full_maildir.py"
