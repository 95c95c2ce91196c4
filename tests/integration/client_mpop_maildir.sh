#!/bin/sh
# client_mpop.py on a Maildir holding the same messages (pop3lib.STORE).
POP3D_TEST_STORE=maildir exec python3 "$(dirname "$0")/client_mpop.py"
