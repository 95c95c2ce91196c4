#!/bin/sh
exec python3 "$(dirname "$0")/nfs_session_lock.py"
