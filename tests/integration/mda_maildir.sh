#!/bin/sh
exec python3 "$(dirname "$0")/mda_maildir.py"
