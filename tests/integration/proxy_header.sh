#!/bin/sh
exec python3 "$(dirname "$0")/proxy_header.py"
