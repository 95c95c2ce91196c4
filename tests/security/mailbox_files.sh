#!/bin/sh
exec python3 "$(dirname "$0")/mailbox_files.py"
