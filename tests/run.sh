#!/bin/sh
# Run every test: the cmocka unit tests, the scripted sessions through the real
# binary, and the integration scripts. The last line is the summary.
cd "$(dirname "$0")/.." || exit 2
passed=0
failed=0
failures=""
rm -rf tests/tmp
mkdir -p tests/tmp

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

# A script that exits 0 when it passes.
run_script() {
	name=$1
	shift
	if "$@" >tests/tmp/"$name".out 2>&1; then
		echo "ok      $name"
		pass 1
	else
		echo "FAILED  $name"
		sed 's/^/        /' tests/tmp/"$name".out
		fail 1 "$name"
	fi
}

for t in tests/test_*; do
	case $t in *.c|*.o) continue ;; esac
	[ -x "$t" ] && run_unit "$t"
done

echo "== scripted sessions (tests/scripts)"
for d in tests/scripts/*/; do
	[ -f "$d/input" ] || continue
	run_script "script:$(basename "$d")" sh tests/script_case.sh "$d"
done

echo "== integration (tests/integration)"
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	run_script "$(basename "$t" .sh)" sh "$t"
done

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
