"""A client that logs in again right after +OK to QUIT must get its maildrop,
not -ERR [IN-USE] (fetchmail, mpop and getmail poll in a loop; a second
account or a retry connects at once).

Seen in this suite: poplib's second session, started as soon as the first had
its +OK to QUIT, was answered "-ERR [IN-USE] mailbox is in use by another
session": pop3d sends the QUIT answer, then writes its summary log line, and
only then releases the maildrop. Any delay in that log write (a busy syslog or
journald, a slow disk) keeps the maildrop locked after the client was told
the session is over.

This test makes that delay certain: the first session logs into a FIFO that
is full by the time it sends QUIT, so pop3d blocks in its last log write. The
second session (through another front end, logging to a file) must still get
in. The FIFO is drained at the end so the first session can finish.
"""
import errno
import os
import poplib
import random
import time

import deploy_common as D

d = D.fresh_dir("client-reconnect")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
msgs = D.generated_messages(random.Random(1939), 5)
D.write_mailbox(box, msgs)

fifo = os.path.join(d, "pop3d-log.fifo")
os.mkfifo(fifo, 0o666)
reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # pop3d's open() of it then succeeds
file_log = os.path.join(d, "pop3d.log")
drained = []


def drain():
    while True:
        try:
            chunk = os.read(reader, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        drained.append(chunk)


def fill_pipe():
    """Fill the FIFO's buffer: the next log line pop3d writes will block."""
    w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                os.write(w, b"#" * 4096)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                raise
        # What still fits (less than one page) fills the last gap.
        for size in (2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1):
            try:
                os.write(w, b"#" * size)
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    raise
    finally:
        os.close(w)


try:
    with D.tcpserver(d, D.pop3d_test_args(maildir, fifo)) as first, \
            D.socat(d, D.pop3d_test_args(maildir, file_log)) as second:
        c = poplib.POP3("127.0.0.1", first.port, timeout=30)
        c.user("alice")
        c.pass_("secret")
        assert c.stat()[0] == 5
        drain()
        fill_pipe()
        assert c.quit().startswith(b"+OK")

        c2 = poplib.POP3("127.0.0.1", second.port, timeout=30)
        c2.user("alice")
        try:
            resp = c2.pass_("secret")
        except poplib.error_proto as e:
            resp = e.args[0]
        try:
            c2.quit()
        except (poplib.error_proto, OSError):
            pass
        assert resp.startswith(b"+OK"), \
            f"a login right after the previous session's +OK to QUIT was answered {resp!r}"
        # Let the first session write its summary and exit.
        deadline = time.time() + 15
        while b"session end:" not in b"".join(drained) and time.time() < deadline:
            drain()
            time.sleep(0.05)
        text = b"".join(drained)
        assert b"session end: user=alice" in text and b"end=quit" in text, text[-500:]
finally:
    drain()
    os.close(reader)
print("ok: a login right after +OK to QUIT gets the maildrop")
