#!/bin/sh
# The benchmark in miniature (bench/run.py --quick: a 2 MB mailbox, one run):
# it generates its mailboxes, drives pop3d through every workload and prints
# the table and the targets. Timings are printed, never asserted.
cd "$(dirname "$0")/../.." || exit 2
out=tests/tmp/bench-smoke
rm -rf "$out"
python3 bench/run.py --quick --account nobody --data "$out" >"$out.txt" 2>"$out.err" || { cat "$out.err"; exit 1; }
cat "$out.txt"
for row in "cat mbox > /dev/null" "cat mbox | cat > /dev/null" \
	"login + STAT + QUIT, no index" "login + STAT + QUIT, index valid" \
	"UIDL + LIST + RETR all, to a pipe" "RETR + DELE all + QUIT" \
	"RETR + DELE all + QUIT, index valid" "small session"; do
	grep -q "$row" "$out.txt" || { echo "missing row: $row"; exit 1; }
done
# The runs really served the mailboxes: the index was written, the DELE run emptied its copy.
ls "$out"/run/index-big/big.mbox.pop3d-index >/dev/null || exit 1
[ ! -s "$out/run/dele.mbox" ] || { echo "RETR + DELE all left messages behind"; exit 1; }
ls "$out"/run/index-dele/dele.mbox.pop3d-index >/dev/null || { echo "no index for the indexed DELE run"; exit 1; }
grep -q "peak RSS, 100 messages" "$out.txt" || exit 1
