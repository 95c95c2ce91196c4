"""Python's poplib, POP3 and POP3_SSL, through the shipped systemd units run
by systemd-socket-activate (what systemd does with Accept=yes):
pop3d.socket/pop3d@.service -> pop3d, and pop3s.socket/pop3s@.service ->
stunnel (inetd mode, stunnel/inetd/pop3s.conf) -> pop3d.

poplib hands over the raw lines, so this is the strictest check: STAT and
LIST sizes, UIDL, RETR of every message (byte-identical after unstuffing,
CRLF line ends), TOP, DELE of a selection, and the mbox afterwards.
"""
import os
import poplib
import random

import deploy_common as D
import pop3lib as P

d = D.fresh_dir("client-poplib")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = D.mailbox_path(maildir)
pem, cert = D.make_certificate(d)

rng = random.Random(1081)
originals = D.generated_messages(rng, D.scaled(300))
D.write_mailbox(box, originals)


def retr_raw(c, n):
    """RETR n as the octets on the wire (poplib strips the line ends)."""
    resp, lines, octets = c.retr(n)
    assert resp.startswith(b"+OK"), resp
    body = b"".join(line + b"\r\n" for line in lines)
    # octets: the raw lines as received, less the stuffing dots poplib removed.
    # Equal to the rebuilt body only if every line ended in CR LF (a bare LF
    # counts one octet less): the one check of the line ends on the wire.
    assert octets == len(body), (octets, len(body))
    return body


def session(c, msgs, delete):
    """Check everything a client sees of MSGS, delete the messages DELETE
    (1-based), QUIT. Returns the UIDLs."""
    c.user("alice")
    c.pass_("secret")
    count, size = c.stat()
    assert count == len(msgs), (count, len(msgs))
    assert size == sum(len(P.wire_form(m)) for m in msgs)
    _, listing, _ = c.list()
    assert [int(x.split()[1]) for x in listing] == [len(P.wire_form(m)) for m in msgs]
    _, uidls, _ = c.uidl()
    uids = [u.split()[1] for u in uidls]
    assert len(set(uids)) == len(msgs), "UIDLs are not unique"
    for u in uids:
        assert 1 <= len(u) <= 70 and all(0x21 <= ch <= 0x7E for ch in u), u
    for n, m in enumerate(msgs, 1):
        assert retr_raw(c, n) == P.wire_form(m), f"RETR {n} differs"
    head = P.wire_form(msgs[0]).split(b"\r\n\r\n", 1)[0]
    _, top, _ = c.top(1, 0)
    assert b"".join(line + b"\r\n" for line in top) == head + b"\r\n\r\n", "TOP 1 0"
    for n in delete:
        c.dele(n)
    c.quit()
    D.wait_sessions_gone(d)
    return uids


log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
with D.systemd_pop3d(d, args) as plain, D.systemd_pop3s(d, pem, args) as tls:
    # POP3: everything, then delete every third message.
    c = poplib.POP3("127.0.0.1", plain.port, timeout=30)
    deleted = set(range(1, len(originals) + 1, 3))
    names = P.maildir_uidls(box) if P.is_maildir(box) else None
    uids = session(c, originals, sorted(deleted))
    if names is not None:
        # A Maildir's UIDL is the name up to ':' (",S=" and ",W=" kept).
        assert [u.decode() for u in uids] == names, (uids[:3], names[:3])
    kept = [m for i, m in enumerate(originals, 1) if i not in deleted]
    kept_uids = [u for i, u in enumerate(uids, 1) if i not in deleted]
    assert D.mailbox_messages(box) == kept, "DELE did not remove exactly the deleted messages"

    # POP3_SSL, certificate checked: the survivors with the same UIDLs; delete all.
    c = poplib.POP3_SSL("127.0.0.1", tls.port, context=D.ssl_context(cert), timeout=30)
    uids = session(c, kept, range(1, len(kept) + 1))
    assert uids == kept_uids, "UIDLs changed across sessions"
    assert D.mailbox_messages(box) == [], "messages left after deleting all"
    # Both sessions ended with QUIT (before the front ends are stopped: that
    # would also end a pop3d that has answered QUIT but not yet logged).
    text = D.wait_log(log, "end=quit", 2)
    assert text.count("end=quit") == 2, text[-2000:]
print("ok: poplib POP3 and POP3_SSL through the systemd units")
