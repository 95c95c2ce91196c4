#!/bin/sh
# A valgrind memcheck pass: the scripted sessions (and, with VALGRIND_STAGES,
# other stages of tests/run.sh) with ./pop3d run under valgrind, and the fuzz
# targets' plain builds (make fuzz-replay) over their seed corpora. Any
# memcheck error or definite leak fails. The last line is "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 2
root=$PWD
dir=$root/build/valgrind
stages=${VALGRIND_STAGES:-scripts security}
passed=0
failed=0

result() {   # result OK|FAILED name
	if [ "$1" = ok ]; then
		echo "ok      $2"
		passed=$((passed + 1))
	else
		echo "FAILED  $2"
		failed=$((failed + 1))
	fi
}

if ! command -v valgrind >/dev/null 2>&1; then
	echo "FAILED  valgrind (not installed: apt-get install valgrind)"
	echo "0 passed, 1 failed"
	exit 1
fi
rm -rf "$dir"
mkdir -p "$dir"
# pop3d drops to nobody before valgrind opens a child's report: the directory
# must let it write, and reach it, so it is in /tmp (the tree may sit under a
# 0700 directory); the reports are copied to build/valgrind/logs at the end.
logs=$(mktemp -d /tmp/pop3d-valgrind.XXXXXX) || exit 2
trap 'rm -rf "$logs"' EXIT
chmod 1777 "$logs"

# The binary the tests run: ./pop3d under valgrind. Reports go to files, as
# pop3d's stderr may be the client's socket; exit status 99 marks an error.
cat >"$dir/pop3d" <<WRAP
#!/bin/sh
exec valgrind --quiet --vgdb=no --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \\
	--errors-for-leak-kinds=definite --log-file=$logs/pop3d.%p.log $root/pop3d "\$@"
WRAP
chmod 755 "$dir/pop3d"

# Left out by default: the timing scripts (enumeration, guessing: their
# timing means nothing under valgrind; their answers are checked in the other
# runs), the sandbox checks (privileges, sandbox, debian_spool: valgrind
# cannot run under a seccomp filter, so pop3d loads none there and logs so;
# they are checked in the other runs), hardening (it checks ./pop3d, the
# release build, whatever $POP3D is), and with VALGRIND_STAGES=integration
# the scripts that do not run $POP3D.
skip=${VALGRIND_SKIP-enumeration guessing privileges sandbox debian_spool hardening deploy_install kill_update}
POP3D=$dir/pop3d POP3D_STAGES=$stages POP3D_NESTED=1 POP3D_SKIP="$skip" \
	sh tests/run.sh 2>&1 | tee "$dir/run.log"
summary=$(tail -1 "$dir/run.log")
p=$(echo "$summary" | sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p')
f=$(echo "$summary" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p')
if [ -n "$p" ] && [ -n "$f" ]; then
	passed=$((passed + p))
	failed=$((failed + f))
else
	result FAILED "valgrind:run (no summary line)"
fi

# The parsers under memcheck: every seed through the plain fuzz target builds.
if make --no-print-directory fuzz-replay >"$dir/make.log" 2>&1; then
	for t in session mbox mbox_split passwd sasl privsep proxy maildir_name; do
		seeds=tests/fuzz/seeds/$t
		[ "$t" = mbox_split ] && seeds=tests/fuzz/seeds/mbox
		if valgrind --quiet --vgdb=no --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
			--errors-for-leak-kinds=definite --log-file="$logs/replay_$t.log" \
			build/fuzz/replay_"$t" "$seeds" >"$dir/replay_$t.out" 2>&1; then
			result ok "valgrind:replay_$t"
		else
			result FAILED "valgrind:replay_$t"
			sed 's/^/    /' "$dir/replay_$t.out" "$logs/replay_$t.log" | head -40
		fi
	done
else
	sed 's/^/    /' "$dir/make.log"
	result FAILED "valgrind:fuzz-replay (build)"
fi

# Zero reports allowed, also from runs whose test passed anyway.
cp -r "$logs" "$dir/logs"
bad=""
for log in "$dir"/logs/*.log; do
	[ -s "$log" ] && bad="$bad $log"
done
if [ -n "$bad" ]; then
	result FAILED "valgrind:reports"
	for log in $bad; do
		echo "--- $log"
		sed 's/^/    /' "$log" | head -60
	done
else
	result ok "valgrind:reports (none)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
