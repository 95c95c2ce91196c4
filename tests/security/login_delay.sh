#!/bin/sh
exec python3 "$(dirname "$0")/login_delay.py"
