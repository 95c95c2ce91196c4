#!/bin/sh
# Run every test: the cmocka unit tests, the scripted sessions through the real
# binary, and the integration scripts; then the security stages: fuzzing, the
# same tests on an ASan+UBSan build and under valgrind, static analysis.
# The last line is the summary.
#
# tests/sanitize.sh and tests/valgrind.sh run this script again (POP3D_NESTED=1)
# with POP3D naming their binary, UNIT_DIR their unit tests, POP3D_STAGES
# the stages to run and POP3D_SKIP the scripts that only make sense for ./pop3d.
cd "$(dirname "$0")/.." || exit 2
passed=0
failed=0
failures=""
unit_dir=${UNIT_DIR:-tests}
stages=${POP3D_STAGES:-unit scripts integration security fuzz sanitize valgrind lint}
want() { case " $stages " in *" $1 "*) return 0 ;; esac; return 1; }
skipped() { case " ${POP3D_SKIP:-} " in *" $1 "*) return 0 ;; esac; return 1; }
[ -n "${POP3D_NESTED:-}" ] || rm -rf tests/tmp
# Every test keeps its failed-login state in a directory of its own: the
# suite must not leave a /var/lib/pop3d behind (checked at the end).
state_was_there=""
[ -e /var/lib/pop3d ] && state_was_there=yes
mkdir -p tests/tmp

skips=""
pass() { passed=$((passed + $1)); }
fail() { failed=$((failed + $1)); failures="$failures $2"; }

# A cmocka binary: count its test cases from its own summary lines.
run_unit() {
	name=$(basename "$1")
	log=tests/tmp/$name.log
	"$1" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	pass "${p:-0}"
	if [ -n "$f" ] && [ "$f" -gt 0 ]; then
		fail "$f" "$name"
	elif [ "$rc" -ne 0 ] || [ -z "$p" ]; then
		fail 1 "$name(exit=$rc)"
	fi
}

# A script that exits 0 when it passes, 77 when it cannot run here (not counted).
run_script() {
	name=$1
	shift
	"$@" >tests/tmp/"$name".out 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "ok      $name"
		pass 1
	elif [ "$rc" -eq 77 ]; then
		echo "skip    $name: $(grep -m1 '^skipped' tests/tmp/"$name".out)"
		skips="$skips $name"
	else
		echo "FAILED  $name"
		sed 's/^/        /' tests/tmp/"$name".out
		fail 1 "$name"
	fi
}

# A stage script prints its own ok/FAILED lines and ends "N passed, N failed".
run_stage() {
	name=$1
	shift
	log=tests/tmp/stage-$name.log
	{ "$@" 2>&1; echo "stage-exit=$?"; } | tee "$log" | grep -v '^stage-exit='
	p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
	rc=$(sed -n 's/^stage-exit=//p' "$log" | tail -1)
	pass "${p:-0}"
	if [ -n "$f" ] && [ "$f" -gt 0 ]; then
		fail "$f" "$name"
	elif [ "$rc" != 0 ] || [ -z "$p" ]; then
		fail 1 "$name(exit=$rc)"
	fi
}

if want unit; then
	for t in "$unit_dir"/test_*; do
		case $t in *.c|*.o) continue ;; esac
		[ -x "$t" ] && run_unit "$t"
	done
fi

if want scripts; then
	echo "== scripted sessions (tests/scripts)"
	for d in tests/scripts/*/; do
		[ -f "$d/input" ] || continue
		run_script "script:$(basename "$d")" sh tests/script_case.sh "$d"
		# The same session against a Maildir holding the same messages.
		sh tests/script_case_maildir.sh --applies "$d" &&
			run_script "maildir:$(basename "$d")" sh tests/script_case_maildir.sh "$d"
	done
fi

if want integration; then
	echo "== integration (tests/integration)"
	for t in tests/integration/*.sh; do
		[ -f "$t" ] || continue
		skipped "$(basename "$t" .sh)" && continue
		run_script "$(basename "$t" .sh)" sh "$t"
	done
fi

if want security; then
	echo "== security (tests/security)"
	for t in tests/security/*.sh; do
		[ -f "$t" ] || continue
		skipped "$(basename "$t" .sh)" && continue
		run_script "security:$(basename "$t" .sh)" sh "$t"
	done
fi

if want fuzz; then
	echo "== fuzzing (tests/fuzz, ${FUZZ_CHECK_SECONDS:-10} s per target)"
	run_stage fuzz sh tests/fuzz/run.sh "${FUZZ_CHECK_SECONDS:-10}"
fi
if want sanitize; then
	echo "== ASan + UBSan build (tests/sanitize.sh)"
	run_stage sanitize sh tests/sanitize.sh
fi
if want valgrind; then
	echo "== valgrind memcheck (tests/valgrind.sh)"
	run_stage valgrind sh tests/valgrind.sh
fi
if want lint; then
	echo "== static analysis (tests/lint.sh)"
	run_stage lint sh tests/lint.sh
fi

if [ -z "${POP3D_NESTED:-}" ] && [ -z "$state_was_there" ]; then
	if [ -e /var/lib/pop3d ]; then
		echo "FAILED  isolation: a test used the default --state-dir (/var/lib/pop3d is left)"
		fail 1 isolation
	else
		echo "ok      isolation: no test used the default --state-dir"
		pass 1
	fi
fi
[ -n "$skips" ] && echo "skipped (not counted):$skips"
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
