#!/bin/sh
exec python3 "$(dirname "$0")/debian_package.py"
