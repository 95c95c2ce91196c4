#!/bin/sh
# One scripted session (tests/script_case.sh) against a Maildir: DIR/mbox's
# messages as the files of a Maildir, served with --mailbox "DROP/%u/", the
# answers compared with DIR/expected (UIDLs: the Maildir's names, and
# DIR/maildir.sed where a figure differs by design), DIR/mbox.after with the
# messages left (tests/script_maildir.py says how). A case without an mbox
# has no Maildir at all: a missing Maildir is an empty maildrop.
#
# "script_case_maildir.sh --applies DIR" says whether the case is for the
# Maildir run (tests/run.sh asks): its session opens the maildrop and works
# on the messages (LIST, RETR, DELE, UIDL, TOP) or is refused by a limit;
# the login's variants are left to the mbox run (what follows the login is
# basic's). An mbox-only case exits 77 with the reason.
set -u
applies() {
	grep -q 'has [0-9]* messages\|too many messages\|too large' "$1/expected" &&
		{ grep -qi '^\(LIST\|RETR\|DELE\|UIDL\|TOP\)' "$1/input" ||
			grep -q 'too many messages\|too large' "$1/expected"; }
}
if [ "$1" = --applies ]; then
	applies "${2%/}"
	exit
fi
pop3d=${POP3D:-./pop3d}
dir=${1%/}
name=$(basename "$dir")
case $name in
pseudo)
	echo "skipped: the folder-internal pseudo-message is an mbox thing (UW-IMAP)"
	exit 77 ;;
esac
tmp=tests/tmp/script-maildir-$name
rm -rf "$tmp"
mkdir -p "$tmp"
drop=$(mktemp -d /tmp/pop3d-script-maildir-"$name".XXXXXX) || exit 2
trap 'rm -rf "$drop"' EXIT
chmod 755 "$drop"

python3 tests/script_maildir.py prepare "$dir" "$drop/alice" "$tmp/expected" || exit 1
if [ -f "$dir/maildir.sed" ]; then
	sed -f "$dir/maildir.sed" "$tmp/expected" >"$tmp/expected.sed" &&
		mv "$tmp/expected.sed" "$tmp/expected" || exit 1
fi
args=""
[ -f "$dir/args" ] && args=$(cat "$dir/args")
if [ "$(id -u)" -eq 0 ]; then
	# The Maildir must belong to the account it is served as.
	chown -R nobody "$drop"
	args="--user nobody $args"
fi
# shellcheck disable=SC2086
"$pop3d" --passwd tests/scripts/passwd --mailbox "$drop/%u/" --log "$tmp/log" \
	--login-delay 0 --state-dir "$PWD/$tmp/state" $args <"$dir/input" >"$tmp/out"
status=$?

rc=0
want=0
[ -f "$dir/status" ] && want=$(cat "$dir/status")
if [ "$status" -ne "$want" ]; then
	echo "exit status $status, expected $want"
	rc=1
fi
if LC_ALL=C grep -q "$(printf '[^\r]$')" "$tmp/out" || LC_ALL=C grep -qx '' "$tmp/out"; then
	echo "a response line does not end in CRLF"
	rc=1
fi
tr -d '\r' <"$tmp/out" >"$tmp/out.lf"
diff -u "$tmp/expected" "$tmp/out.lf" || rc=1
if [ -f "$dir/mbox.after" ]; then
	python3 tests/script_maildir.py after "$dir" "$drop/alice" || rc=1
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
