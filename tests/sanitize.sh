#!/bin/sh
# The unit tests, the scripted sessions and the integration scripts again, on
# an AddressSanitizer + UndefinedBehaviorSanitizer build (make SANITIZE=1).
#
# The build is made in a copy of the sources under build/asan, so the
# repository's own objects and ./pop3d are never touched. Sanitizer reports go
# to files (pop3d's stderr may be the client's socket); any report fails the
# stage, even one from a test that otherwise passed. The last line is
# "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 2
root=$PWD
dir=build/asan
reports=$root/$dir/reports
stages=${SANITIZE_STAGES:-unit scripts integration security}

# Copy a file into the build tree when it changed (make then rebuilds only that).
sync_file() {
	cmp -s "$1" "$dir/$1" || cp -p "$1" "$dir/$1"
}

mkdir -p "$dir/tests"
for f in *.c *.h Makefile tests/*.c tests/*.h; do
	[ -f "$f" ] && sync_file "$f"
done
echo "building in $dir (make SANITIZE=1 pop3d unit)"
if ! make -C "$dir" --no-print-directory SANITIZE=1 pop3d unit >"$dir/make.log" 2>&1; then
	cat "$dir/make.log"
	echo "FAILED  asan:build"
	echo "0 passed, 1 failed"
	exit 1
fi

# pop3d drops to nobody before it could report: the directory must let it
# write, and reach it, so it is in /tmp (the tree may sit under a 0700
# directory); the reports are copied to build/asan/reports at the end.
rm -rf "$reports"
live=$(mktemp -d /tmp/pop3d-asan.XXXXXX) || exit 2
trap 'rm -rf "$live"' EXIT
chmod 1777 "$live"
ASAN_OPTIONS="log_path=$live/asan:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
UBSAN_OPTIONS="log_path=$live/ubsan:print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS UBSAN_OPTIONS

# Left out by default: deploy_install checks that `make install` copies ./pop3d
# itself; kill_update runs its own fault-injection build, not $POP3D;
# mda_concurrency is a minutes-long delivery stress whose pop3d side the other
# tests cover; enumeration is a timing test (its answers are checked in the
# main run) and hardening checks ./pop3d, the release build, whatever $POP3D
# is. SANITIZE_SKIP="" runs them all.
# The Maildir client runs repeat the mbox ones on the same server paths the
# scripted Maildir sessions take here; the kill and delivery races are
# timing runs (make check's budget: doc/development.md).
skip=${SANITIZE_SKIP-deploy_install kill_update mda_concurrency enumeration hardening \
 client_curl_maildir client_fetchmail_maildir client_getmail_maildir client_mpop_maildir \
 client_poplib_maildir kill_update_maildir mda_maildir}
POP3D=$root/$dir/pop3d UNIT_DIR=$dir/tests POP3D_STAGES=$stages POP3D_NESTED=1 \
	POP3D_SKIP="$skip" sh tests/run.sh 2>&1 | tee "$dir/run.log"
summary=$(tail -1 "$dir/run.log")
passed=$(echo "$summary" | sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p')
failed=$(echo "$summary" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p')
if [ -z "$passed" ] || [ -z "$failed" ]; then
	echo "FAILED  asan:run (no summary line)"
	passed=${passed:-0}
	failed=$((${failed:-0} + 1))
fi

# Zero reports allowed.
cp -r "$live" "$reports"
if [ -n "$(ls -A "$reports")" ]; then
	echo "FAILED  asan:reports"
	for r in "$reports"/*; do
		echo "--- $r"
		sed 's/^/    /' "$r" | head -60
	done
	failed=$((failed + 1))
else
	echo "ok      asan:reports (none)"
	passed=$((passed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
