#!/bin/sh
exec python3 "$(dirname "$0")/poplib_curl_socat.py"
