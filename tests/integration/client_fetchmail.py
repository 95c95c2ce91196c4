"""fetchmail through xinetd (the shipped xinetd.d/pop3) -> pop3d, and over
POP3S through xinetd.d/pop3s -> stunnel -> pop3d.

Keep mode with UIDL bookkeeping: the first run fetches every message and the
mailbox is untouched; after new mail arrives, a second run fetches only the new
messages. Delete mode: a run limited to 100 messages removes exactly those from
the mbox, a last run fetches the rest and leaves the maildrop empty. Every
message arrives byte-identical apart from the Received: header fetchmail adds.
"""
import os
import random

import deploy_common as D

# fetchmail prepends its own "Received: from 127.0.0.1 ... (fetchmail-6.x)"
# trace header (RFC 5321 4.4); nothing else may differ. With an MDA there is no
# From_ line and no >From quoting: the MDA gets the message as sent.
ADDED = {"received"}

DELIVER = """#!/bin/sh
# fetchmail's MDA: one message on stdin, stored as OUTDIR/NNNNNN in delivery order.
n=$(ls "$1" | wc -l)
exec cat >"$1/$(printf %06d "$n")"
"""

d = D.fresh_dir("client-fetchmail")
pem, cert = D.make_certificate(d)
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = D.mailbox_path(maildir)
home = os.path.join(d, "fetchmail-home")
os.makedirs(home, mode=0o700)
deliver = os.path.join(d, "deliver.sh")
D.write(deliver, DELIVER, 0o755)

rng = random.Random(1939)
originals = D.generated_messages(rng, D.scaled(250))
LIMIT = D.scaled(100)
D.write_mailbox(box, originals)
before = D.snapshot(box)


def fetch(port, name, flags, ok=(0, 1), tls=False):
    """One fetchmail run with a private rc file (fetchmail insists on mode 0600
    and on the caller owning it) and FETCHMAILHOME for its UIDL list."""
    out = os.path.join(d, name)
    os.makedirs(out)
    rc = os.path.join(d, name + ".rc")
    # Plain POP3 needs sslproto '': fetchmail 6.4 asks for STLS even when
    # CAPA does not offer it (pop3d does TLS on port 995 only, via stunnel).
    # POP3S: fetchmail checks the certificate's DNS names, not its IP address.
    tls_options = (f"ssl sslcertck sslcertfile {cert} sslcommonname localhost" if tls
                   else "sslproto ''")
    D.write(rc, f"""set no syslog
poll 127.0.0.1 protocol pop3 service {port} timeout 30
  user "alice" there with password "secret"
  norewrite {tls_options}
  mda "{deliver} {out}"
""", 0o600)
    env = dict(os.environ, FETCHMAILHOME=home, HOME=home)
    # Exit 0: mail was delivered; 1: there was none; 13: fetchlimit reached.
    D.run_client(["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "-v", "--uidl", *flags,
                  "--pidfile", os.path.join(d, "fetchmail.pid")],
                 os.path.join(d, name + ".log"), ok=ok, env=env, settle=d)
    return [D.read(os.path.join(out, f)) for f in sorted(os.listdir(out))]


log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
plain_dir, tls_dir = os.path.join(d, "xinetd-pop3"), os.path.join(d, "xinetd-pop3s")
os.makedirs(plain_dir)
os.makedirs(tls_dir)
with D.xinetd_pop3(plain_dir, args) as fe, D.xinetd_pop3s(tls_dir, pem, args) as tls:
    # 1. keep + UIDL: everything, in order; the mbox is not touched.
    got = fetch(fe.port, "keep1", ["--keep"])
    assert D.check_delivered(got, originals, ADDED) == D.ids_of(originals)
    assert D.snapshot(box) == before, "a keep run changed the mailbox"

    # 2. new mail arrives; keep + UIDL again fetches only the new messages.
    new = D.generated_messages(rng, 7, first=1001)
    D.append_mailbox(box, new)
    got = fetch(fe.port, "keep2", ["--keep"])
    assert D.check_delivered(got, new, ADDED) == D.ids_of(new), \
        "the second keep run did not fetch exactly the new messages"
    everything = originals + new

    # 2b. POP3S (xinetd -> stunnel -> pop3d), certificate checked: all of it
    # again (--all), still kept.
    got = fetch(tls.port, "pop3s", ["--keep", "--all"], tls=True)
    assert D.check_delivered(got, everything, ADDED) == D.ids_of(everything)
    assert D.mailbox_messages(box) == everything

    # 3. delete mode, at most LIMIT messages: those are gone from the mbox, the
    # others are kept byte for byte.
    got = fetch(fe.port, "delete1", ["--all", "--fetchlimit", str(LIMIT)], ok=(13,))
    assert D.check_delivered(got, everything, ADDED) == D.ids_of(everything[:LIMIT])
    assert D.mailbox_messages(box) == everything[LIMIT:], \
        f"deleting {LIMIT} messages did not leave exactly the other ones"

    # 4. delete mode: the rest, and the maildrop is empty.
    got = fetch(fe.port, "delete2", ["--all"])
    assert D.check_delivered(got, everything, ADDED) == D.ids_of(everything[LIMIT:])
    assert D.mailbox_messages(box) == [], "messages left after fetching all"
    # The session summaries count the deletions.
    rest = f"deleted={len(everything) - LIMIT}/"
    text = D.wait_log(log, rest)
    assert f"deleted={LIMIT}/" in text and rest in text, text[-2000:]
print("ok: fetchmail keep+UIDL, only-new, POP3S, delete (xinetd, xinetd + stunnel)")
