#!/bin/sh
# The benchmark in miniature (bench/run.py --quick: a 2 MB mailbox, one run):
# it generates its mailboxes, drives pop3d through every workload and prints
# the table and the targets. Timings are printed, never asserted.
cd "$(dirname "$0")/../.." || exit 2
umask 022   # nobody must reach what the bench makes, whatever the caller's umask
# The table stays in tests/tmp; the mailboxes and a copy of the binary go to a
# fresh directory in /tmp: as root, the bench runs pop3d as nobody too, who
# may not reach a tree under a private (0700) directory.
report=tests/tmp/bench-smoke
out=$(mktemp -d /tmp/pop3d-bench-smoke.XXXXXX) || exit 2
trap 'rm -rf "$out"' EXIT
chmod 755 "$out"
cp -p "${POP3D:-pop3d}" "$out/pop3d" || exit 2
python3 bench/run.py --quick --account nobody --data "$out" --pop3d "$out/pop3d" \
	>"$report.txt" 2>"$report.err" || { cat "$report.err"; exit 1; }
cat "$report.txt"
for row in "cat mbox > /dev/null" "cat mbox | cat > /dev/null" \
	"login + STAT + QUIT, no index" "login + STAT + QUIT, index valid" \
	"UIDL + LIST + RETR all, to a pipe" "RETR + DELE all + QUIT" \
	"RETR + DELE all + QUIT, index valid" "small session"; do
	grep -q "$row" "$report.txt" || { echo "missing row: $row"; exit 1; }
done
# The runs really served the mailboxes: the index was written, the DELE run emptied its copy.
ls "$out"/run/index-big/big.mbox.pop3d-index >/dev/null || exit 1
[ -f "$out/run/dele.mbox" ] && [ ! -s "$out/run/dele.mbox" ] ||
	{ echo "RETR + DELE all left messages behind (or no mailbox)"; exit 1; }
# The timed commands end in "| cat": their exit status is cat's. pop3d's own
# word is its log: every session ended with QUIT.
ends=$(cat "$out"/run/pop3d*.log | grep -c 'session end:')
bad=$(cat "$out"/run/pop3d*.log | grep 'session end:' | grep -vc 'end=quit')
[ "$ends" -gt 0 ] && [ "$bad" -eq 0 ] ||
	{ echo "$bad of $ends sessions did not end with QUIT:"; grep 'session end:' "$out"/run/pop3d*.log | grep -v end=quit; exit 1; }
ls "$out"/run/index-dele/dele.mbox.pop3d-index >/dev/null || { echo "no index for the indexed DELE run"; exit 1; }
grep -q "peak RSS, 100 messages" "$report.txt" || exit 1
# The Maildir benchmark in miniature (bench/maildir.py --quick: 300 messages,
# one run, about 2 s): it checks STAT and the download of every message
# before timing, and that RETR + DELE all emptied the Maildir.
python3 bench/maildir.py --quick --account nobody --data "$out/maildir" --pop3d "$out/pop3d" \
	>"$report-maildir.txt" 2>"$report-maildir.err" || { cat "$report-maildir.err"; exit 1; }
cat "$report-maildir.txt"
for row in "readdir + stat every file" "cat every file | cat" \
	"first login + STAT + QUIT, no index" "second login + STAT + QUIT, index" \
	"UIDL + LIST + RETR all, to a pipe" "RETR + DELE all + QUIT, index" \
	"memory: worker"; do
	grep -q "$row" "$report-maildir.txt" || { echo "missing Maildir row: $row"; exit 1; }
done
ls "$out"/maildir/maildir-*/run/index-big/* >/dev/null || { echo "no index for the Maildir"; exit 1; }
bad=$(grep 'session end:' "$out"/maildir/maildir-*/run/pop3d.log | grep -vc 'end=quit')
[ "$bad" -eq 0 ] || { echo "$bad Maildir sessions did not end with QUIT"; exit 1; }
