#!/bin/sh
# The demo: a real POP3 session on a copy of the bundled mailbox.
set -eu
cd "$(dirname "$0")/.."
rm -rf build/demo
mkdir -p build/demo
cp examples/demo.mbox build/demo/demo.mbox
opts=""
if [ "$(id -u)" -eq 0 ]; then
	# As root, pop3d serves virtual users as an unprivileged account.
	chown -R nobody build/demo
	opts="--user nobody"
fi
echo "== client script (examples/session.txt):"
sed 's/^/C: /' examples/session.txt
echo "== pop3d's answers:"
# shellcheck disable=SC2086
./pop3d --passwd examples/passwd --mailbox "$PWD/build/demo/%u.mbox" \
	--log "$PWD/build/demo/pop3d.log" --login-delay 0 --state-dir "$PWD/build/demo/state" $opts \
	<examples/session.txt | tr -d '\r' | sed 's/^/S: /'
echo "== pop3d's log (build/demo/pop3d.log):"
cat build/demo/pop3d.log
echo "== build/demo/demo.mbox now holds $(grep -c '^From ' build/demo/demo.mbox) messages (DELE 2 took effect at QUIT)"
