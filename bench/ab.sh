#!/bin/sh
# Compare two pop3d binaries on one workload of bench/run.py, runs interleaved
# (A B A B ...) so that a machine whose speed drifts treats both alike; prints
# the median wall time of each and their ratio. Uses the mailboxes and command
# files a full `bench/run.py` left in bench/data/run (run it once first).
#
#   bench/ab.sh OLD_POP3D NEW_POP3D stat|stat-index|all|all-index [RUNS]
#
# Every figure "interleaved medians" in doc/performance.md came from this.
set -eu
[ $# -ge 3 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
a=$1 b=$2 workload=$3 runs=${4:-11}
run=$(cd "$(dirname "$0")" && pwd)/data/run
[ -f "$run/all.txt" ] || { echo "bench/ab.sh: run bench/run.py first ($run)" >&2; exit 2; }
user=""
# As bench/run.py: root drops to --user (its --account; set ACCOUNT to match).
[ "$(id -u)" -eq 0 ] && user="-u ${ACCOUNT:-pop3bench}"
case $workload in
stat)       script=stat.txt index="" out="> /dev/null" ;;
stat-index) script=stat.txt index="--index-dir=$run/index-%u" out="> /dev/null" ;;
all)        script=all.txt  index="" out="| cat > /dev/null" ;;
all-index)  script=all.txt  index="--index-dir=$run/index-%u" out="| cat > /dev/null" ;;
*) echo "bench/ab.sh: unknown workload $workload" >&2; exit 2 ;;
esac

# Wall time of one session in milliseconds.
one() {
	start=$(date +%s%N)
	sh -c "$1 -P $run/passwd $user -m $run/%u.mbox -d 0 -L $run/ab.log $index < $run/$script $out"
	echo $(( ($(date +%s%N) - start) / 1000000 ))
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

i=0
: > "$run/ab.a"
: > "$run/ab.b"
while [ $i -lt "$runs" ]; do
	one "$a" >> "$run/ab.a"
	one "$b" >> "$run/ab.b"
	i=$((i + 1))
done
ma=$(median < "$run/ab.a")
mb=$(median < "$run/ab.b")
echo "$workload, $runs runs each, interleaved: A $ma ms, B $mb ms, B/A $(awk "BEGIN {printf \"%.3f\", $mb / $ma}")"
