#!/bin/sh
# A mount namespace of its own: the compiled-in journal directory is made on a
# tmpfs over /var/lib there, never on the machine's.
if [ "$(id -u)" != 0 ]; then echo "skipped: a root:mail spool needs root"; exit 77; fi
if ! unshare -m true 2>/dev/null; then echo "skipped: no mount namespace (unshare -m)"; exit 77; fi
POP3D_DEBIAN_SPOOL_NS=1 exec unshare -m python3 "$(dirname "$0")/debian_spool.py"
