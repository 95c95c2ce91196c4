#!/bin/sh
# The demo: a real POP3 session on a copy of the bundled mailbox.
set -eu
cd "$(dirname "$0")/.."
mkdir -p build/demo
cp examples/demo.mbox build/demo/demo.mbox
echo "== client script (examples/session.txt):"
sed 's/^/C: /' examples/session.txt
echo "== pop3d's answers:"
./pop3d --passwd examples/passwd --mailbox build/demo/%u.mbox --log stderr \
	--login-delay 0 <examples/session.txt | tr -d '\r' | sed 's/^/S: /'
echo "== the mailbox now holds $(grep -c '^From ' build/demo/demo.mbox) messages (build/demo/demo.mbox)"
