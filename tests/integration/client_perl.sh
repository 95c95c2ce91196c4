#!/bin/sh
# Perl's Net::POP3 (AUTH LOGIN through Authen::SASL) and Mail::POP3Client.
for m in Net::POP3 Authen::SASL Mail::POP3Client; do
	perl -M"$m" -e 1 2>/dev/null || { echo "skipped: Perl module $m is not installed (tests/deps.sh check)"; exit 77; }
done
command -v socat >/dev/null 2>&1 || { echo "skipped: socat is not installed"; exit 77; }
exec python3 "$(dirname "$0")/client_perl.py"
