#!/bin/sh
exec python3 "$(dirname "$0")/client_fetchmail.py"
