"""s-nail through socat -> pop3d, and RFC 6856 UTF8 with Python's poplib.

s-nail, non-interactive (-#, no resource files), opens pop3://alice@... (it
sends USER/PASS; plain POP3 to 127.0.0.1), saves every message into an mbox
file and deletes them all: each one arrives as stored, and the maildrop is
empty afterwards. Then the UTF-8 user jürgen of tests/scripts/passwd: s-nail
logs in as pop3://j%C3%BCrgen@... without the UTF8 command (UTF8 USER is
advertised: RFC 6856 lets a client send a UTF-8 name straight away);
poplib sends UTF8 (+OK), then USER jürgen and PASS, fetches and deletes. A
name that is not UTF-8 (Latin-1 "j\\xfcrgen") gets a -ERR that says so.
"""
import os
import poplib
import random

import deploy_common as D
import pop3lib as P

JUERGEN = "j\u00fcrgen"

d = D.fresh_dir("client-snail")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
ubox = os.path.join(maildir, JUERGEN + ".mbox")
rng = random.Random(6856)
originals = D.generated_messages(rng, 30)
D.write_mailbox(box, originals)
env = dict(os.environ, HOME=d, LC_ALL="C.UTF-8")


def same(got, want, what):
    """GOT (the saved messages) are WANT, in order, byte for byte, but for the
    empty lines at a message's end: s-nail's mbox writer lets a message's own
    last empty line stand for the separator, so one of them is gone. (The
    generated messages hold no From_ line after an empty line, the one line
    an mbox writer must quote, so what it saved is compared as it is.)"""
    assert len(got) == len(want), f"{what}: {len(got)} messages saved, {len(want)} stored"
    for n, (g, w) in enumerate(zip(got, want), 1):
        g, w = g.rstrip(b"\n"), w.rstrip(b"\n")
        assert g == w, f"{what}: message {n}: {D.first_difference(g, w)}"


def snail(name, url, password):
    """s-nail saves every message of URL into NAME.mbox and deletes them all."""
    saved = os.path.join(d, name + ".mbox")
    commands = f"copy * {saved}\ndelete *\nquit\n".encode()
    D.run_client(["s-nail", "-:/", "-N", "-#", "-S", "v15-compat", "-S", f"password={password}",
                  "-S", "pop3-no-apop", "-f", url], os.path.join(d, name + ".log"),
                 env=env, stdin=commands, settle=d)
    return P.split_mbox(D.read(saved))


log = os.path.join(d, "pop3d.log")
with D.socat(d, D.pop3d_test_args(maildir, log)) as fe:
    # 1. s-nail as alice: save all, delete all.
    got = snail("alice", f"pop3://alice@127.0.0.1:{fe.port}", "secret")
    same(got, originals, "s-nail")
    assert D.mailbox_messages(box) == [], "messages left after s-nail deleted them all"

    # 2. s-nail as jürgen, a UTF-8 name straight away (no UTF8 command).
    theirs = D.generated_messages(rng, 5, first=201)
    D.write_mailbox(ubox, theirs)
    got = snail("juergen", f"pop3://j%C3%BCrgen@127.0.0.1:{fe.port}", "geheim")
    same(got, theirs, "s-nail as a UTF-8 user")
    assert D.mailbox_messages(ubox) == []

    # 3. poplib: UTF8, then USER jürgen; RETR and DELE every message.
    theirs = D.generated_messages(rng, 4, first=301)
    D.write_mailbox(ubox, theirs)
    c = poplib.POP3("127.0.0.1", fe.port, timeout=30)
    assert "UTF8" in c.capa() and c.capa()["UTF8"] == ["USER"], c.capa()
    assert c.utf8().startswith(b"+OK"), "UTF8 refused"
    c.user(JUERGEN)
    c.pass_("geheim")
    count, _ = c.stat()
    assert count == len(theirs), count
    for n, m in enumerate(theirs, 1):
        _, lines, _ = c.retr(n)
        assert b"".join(line + b"\r\n" for line in lines) == P.wire_form(m), f"RETR {n}"
        c.dele(n)
    try:
        c._shortcmd("UTF8")   # after login: refused (RFC 6856 section 2)
        raise AssertionError("UTF8 accepted after login")
    except poplib.error_proto as e:
        assert "before login" in str(e), e
    c.quit()
    D.wait_sessions_gone(d)
    assert D.mailbox_messages(ubox) == []

    # 4. A name that is not UTF-8: a -ERR that says so, logged, no password checked.
    c = poplib.POP3("127.0.0.1", fe.port, timeout=30)
    c.utf8()
    c.encoding = "latin-1"
    try:
        c.user(JUERGEN)
        raise AssertionError("a Latin-1 name was accepted")
    except poplib.error_proto as e:
        assert "not valid UTF-8" in str(e), e
    c.quit()
    D.wait_sessions_gone(d)
    text = D.wait_log(log, "session end:", 4)
    assert 'login: user="j\\xc3\\xbcrgen" peer=127.0.0.1 messages=5' in text, text
    assert 'login: user="j\\xc3\\xbcrgen" peer=127.0.0.1 messages=4' in text, text
    assert 'user name refused: user="j\\xfcrgen" peer=127.0.0.1 reason="not valid UTF-8"' \
        in text, text
    assert "authentication failed" not in text, text

print("ok: s-nail save + delete (also as a UTF-8 user), poplib UTF8 + USER jürgen (socat)")
