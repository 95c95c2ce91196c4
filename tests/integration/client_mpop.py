"""mpop through tcpserver -> pop3d (POP3) and stunnel/pop3s.conf -> pop3d (POP3S).

--keep --only-new: the first run fetches everything and leaves the mbox as it
was; after new mail arrives, the next run fetches only the new messages. Over
POP3S (certificate checked against the test's self-signed one) every message
is fetched again, into an mbox file. Delete mode with a skip size: exactly the
messages not larger than the limit go from the mbox, the bigger ones stay; a
last run empties the maildrop. Every message arrives byte-identical apart from
the Received: header mpop adds.
"""
import os
import random

import deploy_common as D
import pop3lib as P

# mpop prepends "Received: from 127.0.0.1 ... by HOST (mpop-1.x) with POP3"
# (its received_header option, on by default); nothing else may differ.
ADDED = {"received"}
SKIPSIZE = 4000

d = D.fresh_dir("client-mpop")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = D.mailbox_path(maildir)
pem, cert = D.make_certificate(d)

rng = random.Random(2449)
originals = D.generated_messages(rng, D.scaled(250))
D.write_mailbox(box, originals)
before = D.snapshot(box)


def account(port, tls):
    """An mpop account block; mpop wants `tls off` for plain POP3 and
    `auth user` to send USER/PASS (it offers AUTH PLAIN only over TLS)."""
    if tls:
        tls_lines = f"tls on\ntls_starttls off\ntls_trust_file {cert}\n"
    else:
        tls_lines = "tls off\n"
    return (f"host 127.0.0.1\nport {port}\n{tls_lines}auth user\nuser alice\n"
            f"password secret\ntimeout 30\nuidls_file {d}/uidls\n")


def fetch(name, port, flags, tls=False, delivery="maildir"):
    """One mpop run with a private configuration file (mode 0600: it holds a
    password). Returns the delivered messages."""
    if delivery == "maildir":
        target = D.make_maildir(os.path.join(d, name))
    else:
        target = os.path.join(d, name + ".mbox")
        D.write(target, b"")
    rc = os.path.join(d, name + ".mpoprc")
    D.write(rc, f"account test\n{account(port, tls)}delivery {delivery} {target}\n", 0o600)
    D.run_client(["mpop", "-Q", "-C", rc, *flags, "test"], os.path.join(d, name + ".log"),
                 settle=d)
    if delivery == "maildir":
        return D.maildir_messages(target)
    # mpop writes mboxrd: From_ lines and ">From" quoting are its own.
    return D.mboxrd_messages(target)


log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
with D.tcpserver(d, args) as plain, D.stunnel(d, pem, args) as tls:
    # 1. --keep --only-new: everything; the mbox is not touched.
    got = fetch("keep1", plain.port, ["--keep", "--only-new"])
    D.same_messages(D.check_delivered(got, originals, ADDED), originals, "keep run")
    assert D.snapshot(box) == before, "a --keep run changed the mailbox"

    # 2. new mail; --keep --only-new fetches only the new messages.
    new = D.generated_messages(rng, 6, first=1001)
    D.append_mailbox(box, new)
    got = fetch("keep2", plain.port, ["--keep", "--only-new"])
    D.same_messages(D.check_delivered(got, new, ADDED), new, "second --only-new run")
    everything = originals + new

    # 3. POP3S, all messages again (only_new off), delivered to an mbox file.
    got = fetch("pop3s", tls.port, ["--keep", "--only-new=off"], tls=True, delivery="mbox")
    D.same_messages(D.check_delivered(got, everything, ADDED), everything, "POP3S run")
    assert D.mailbox_messages(box) == everything

    # 4. delete mode, skipping messages over SKIPSIZE octets (as LIST tells):
    # the small ones are deleted, the big ones kept byte for byte.
    small = [m for m in everything if len(P.wire_form(m)) <= SKIPSIZE]
    big = [m for m in everything if len(P.wire_form(m)) > SKIPSIZE]
    assert small and big
    got = fetch("delete1", plain.port, ["--keep=off", "--only-new=off", f"--skipsize={SKIPSIZE}"])
    D.same_messages(D.check_delivered(got, everything, ADDED), small, "delete run")
    assert D.mailbox_messages(box) == big, "the mbox does not hold exactly the big messages"

    # 5. delete mode: the rest; the maildrop is empty.
    got = fetch("delete2", plain.port, ["--keep=off", "--only-new=off"])
    D.same_messages(D.check_delivered(got, big, ADDED), big, "last delete run")
    assert D.mailbox_messages(box) == [], "messages left after fetching all"

print("ok: mpop --keep --only-new, POP3S, delete (tcpserver, stunnel)")
