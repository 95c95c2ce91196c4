#!/bin/sh
exec python3 "$(dirname "$0")/dovecot_maildir.py"
