#!/bin/sh
# Run every fuzz target for SECONDS each (default 60) and print, per target,
# the executions and the crashes. Builds them first (make fuzz).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Each target starts from its seed corpus (tests/fuzz/seeds/, which holds
# every crash ever found, so they are replayed first) and the corpus grown by
# earlier runs (build/fuzz/corpus/TARGET). After a crash the target is
# restarted for the rest of its time. Crashing inputs are written to
# build/fuzz/crashes/, libFuzzer's output to build/fuzz/logs/. The last line
# is "N passed, N failed" (a target passes when it found no crash).
set -u
cd "$(dirname "$0")/../.." || exit 2

seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-session mbox mbox_split passwd sasl privsep proxy maildir_name}
max_restarts=5   # crashes collected per target before giving up on it

case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 64 ;; esac

mkdir -p build/fuzz/corpus build/fuzz/crashes build/fuzz/logs
if ! make --no-print-directory fuzz >build/fuzz/logs/make.log 2>&1; then
	cat build/fuzz/logs/make.log
	echo "FAILED  fuzz:build (make fuzz)"
	echo "0 passed, 1 failed"
	exit 1
fi

# Per target: seed directory, dictionary, longest input.
seeds_of() { case $1 in mbox_split) echo mbox ;; *) echo "$1" ;; esac; }
dict_of() {
	case $1 in
	session) echo tests/fuzz/session.dict ;;
	mbox | mbox_split) echo tests/fuzz/mbox.dict ;;
	passwd) echo tests/fuzz/passwd.dict ;;
	*) echo "" ;;
	esac
}
max_len_of() {
	case $1 in
	session) echo 8192 ;;      # past the 2 KiB pre-login cap of the target
	mbox) echo 16384 ;;
	mbox_split) echo 4096 ;;   # behind a 256 KiB prefix already
	passwd) echo 12288 ;;      # several of the parser's 4 KiB reads
	sasl) echo 1100 ;;         # a little over MAX_SASL_LINE
	maildir_name) echo 512 ;;  # twice NAME_MAX: names too long to be one
	*) echo 4096 ;;            # privsep, proxy: libFuzzer's own default, said
	esac
}

# One libFuzzer run; prints its executions, leaves its log in $log.
fuzz_once() {
	t=$1 secs=$2 log=$3
	dict=$(dict_of "$t")
	build/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len="$(max_len_of "$t")" -print_final_stats=1 \
		${dict:+-dict="$dict"} -artifact_prefix=build/fuzz/crashes/"$t"- \
		build/fuzz/corpus/"$t" tests/fuzz/seeds/"$(seeds_of "$t")" >"$log" 2>&1
	sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1
}

passed=0
failed=0
total_execs=0
printf '%-12s %12s %8s %8s\n' target executions seconds crashes
for t in $targets; do
	if [ ! -x build/fuzz/fuzz_"$t" ]; then
		echo "FAILED  fuzz:$t (no such target)"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p build/fuzz/corpus/"$t"
	execs=0 crashes=0 run=0 broken=0
	start=$(date +%s)
	left=$seconds
	while [ "$left" -gt 0 ] && [ "$crashes" -le "$max_restarts" ]; do
		run=$((run + 1))
		log=build/fuzz/logs/$t.$run.log
		n=$(fuzz_once "$t" "$left" "$log")
		execs=$((execs + ${n:-0}))
		if grep -q 'Test unit written to' "$log"; then
			crashes=$((crashes + 1))
			echo "crash in fuzz_$t:"
			grep -E 'ERROR|check failed|runtime error|SUMMARY|Test unit written' "$log" | sed 's/^/    /'
		elif [ -z "$n" ]; then
			broken=1   # died without its final statistics
			echo "fuzz_$t did not finish; see $log:"
			tail -5 "$log" | sed 's/^/    /'
			break
		fi
		left=$((seconds - ($(date +%s) - start)))
	done
	elapsed=$(($(date +%s) - start))
	total_execs=$((total_execs + execs))
	printf '%-12s %12s %8s %8s\n' "$t" "$execs" "$elapsed" "$crashes"
	if [ "$crashes" -eq 0 ] && [ "$broken" -eq 0 ]; then
		echo "ok      fuzz:$t"
		passed=$((passed + 1))
	elif [ "$crashes" -eq 0 ]; then
		echo "FAILED  fuzz:$t (libFuzzer did not run)"
		failed=$((failed + 1))
	else
		echo "FAILED  fuzz:$t ($crashes crashes, inputs in build/fuzz/crashes/)"
		failed=$((failed + 1))
	fi
done
echo "total executions: $total_execs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
