"""tcpserver (ucspi-tcp) -> pop3d and socat -> pop3d, as doc/administration.md
and pop3d(8) show them:

- the client's address in the log: from the TCP socket on stdin (tcpserver)
  and from SOCAT_PEERADDR (socat's EXEC gives a socket pair);
- the exit status the front end sees (tcpserver -v): 0 after QUIT, 1 for a
  connection dropped after DELE, and the dropped session deleted nothing.
"""
import os
import poplib
import random
import re
import socket

import deploy_common as D

d = D.fresh_dir("deploy-tcpserver-socat")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
msgs = D.generated_messages(random.Random(4), 6)
D.write_mailbox(box, msgs)
log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)


def quit_session(port):
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    c.user("alice")
    c.pass_("secret")
    assert c.stat()[0] == len(msgs)
    c.quit()
    D.wait_sessions_gone(d)


def dropped_session(port):
    """DELE everything, then close the connection without QUIT."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"USER alice\r\nPASS secret\r\n" +
              b"".join(b"DELE %d\r\n" % n for n in range(1, len(msgs) + 1)))
    for _ in range(2 + len(msgs)):
        assert f.readline().startswith(b"+OK")
    f.close()
    s.close()
    D.wait_sessions_gone(d)


# tcpserver as pop3d(8) shows it, plus -v to see the exit statuses.
port = D.P.free_port()
with D.FrontEnd(["tcpserver", "-v", "-R", "-H", "-l", "localhost", "127.0.0.1", str(port),
                 D.POP3D, *args], port, os.path.join(d, "tcpserver-v.out")) as fe:
    quit_session(fe.port)
    dropped_session(fe.port)
    D.wait_log(log, "end=disconnected")
    out = D.wait_log(fe.log, " status ", 2)
# tcpserver prints the raw wait(2) status: exit code 1 is 256.
statuses = [int(s) >> 8 for s in re.findall(r"^tcpserver: end \d+ status (\d+)$", out, re.M)]
assert statuses == [0, 1], out
text = D.pop3d_log(log)
assert re.search(r"session end: user=alice peer=127\.0\.0\.1 .*end=quit", text), text
assert re.search(r"session end: user=alice peer=127\.0\.0\.1 .*deleted=0/0 .*"
                 r"end=disconnected", text), text
assert D.mailbox_messages(box) == msgs, "a dropped session deleted messages"

with D.socat(d, args) as fe:
    quit_session(fe.port)
    text = D.wait_log(log, "end=quit", 2)
# socat passes the address in SOCAT_PEERADDR; stdin is not a TCP socket.
assert text.count("login: user=alice peer=127.0.0.1 ") == 3, text
print("ok: tcpserver and socat front ends: peers, exit statuses, no deletion without QUIT")
