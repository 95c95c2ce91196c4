#!/bin/sh
# One scripted session: feed DIR/input to ./pop3d, compare with DIR/expected.
# DIR may hold: mbox (the maildrop before), mbox.after (the maildrop after),
# args (extra options), status (expected exit status, default 0),
# log (patterns, one per line, that must appear in the log).
set -u
pop3d=${POP3D:-./pop3d}   # the sanitizer and valgrind stages run other builds
dir=${1%/}
name=$(basename "$dir")
tmp=tests/tmp/script-$name
rm -rf "$tmp"
mkdir -p "$tmp"
# The maildrop in a fresh directory in /tmp: as root, pop3d serves it as
# --user nobody, who may not reach a tree under a private (0700) directory.
drop=$(mktemp -d /tmp/pop3d-script-"$name".XXXXXX) || exit 2
trap 'rm -rf "$drop"' EXIT
chmod 755 "$drop"

if [ -f "$dir/mbox" ]; then cp "$dir/mbox" "$drop/alice.mbox"; fi
args=""
[ -f "$dir/args" ] && args=$(cat "$dir/args")
if [ "$(id -u)" -eq 0 ]; then
	# As root, pop3d serves virtual users as --user: give it the directory.
	chown -R nobody "$drop"
	args="--user nobody $args"
fi
# shellcheck disable=SC2086
"$pop3d" --passwd tests/scripts/passwd --mailbox "$drop/%u.mbox" --log "$tmp/log" \
	--login-delay 0 --state-dir "$PWD/$tmp/state" $args <"$dir/input" >"$tmp/out"
status=$?

rc=0
want=0
[ -f "$dir/status" ] && want=$(cat "$dir/status")
if [ "$status" -ne "$want" ]; then
	echo "exit status $status, expected $want"
	rc=1
fi
# Every line the server sends ends in CRLF.
if LC_ALL=C grep -q "$(printf '[^\r]$')" "$tmp/out" || LC_ALL=C grep -qx '' "$tmp/out"; then
	echo "a response line does not end in CRLF"
	rc=1
fi
tr -d '\r' <"$tmp/out" >"$tmp/out.lf"
if ! diff -u "$dir/expected" "$tmp/out.lf"; then
	rc=1
fi
if [ -f "$dir/mbox.after" ]; then
	if ! cmp "$dir/mbox.after" "$drop/alice.mbox"; then
		diff -u "$dir/mbox.after" "$drop/alice.mbox" | head -40
		rc=1
	fi
fi
if [ -f "$dir/log" ]; then
	while IFS= read -r pat; do
		if ! grep -q -- "$pat" "$tmp/log"; then
			echo "log lacks: $pat"
			rc=1
		fi
	done <"$dir/log"
fi
[ $rc -ne 0 ] && { echo "--- log:"; cat "$tmp/log"; }
exit $rc
