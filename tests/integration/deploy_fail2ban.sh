#!/bin/sh
exec python3 "$(dirname "$0")/deploy_fail2ban.py"
