"""Real clients through a real front end: Python's poplib and curl against
./pop3d behind socat on 127.0.0.1. Every message arrives byte-identical;
deletions take effect on the mbox."""
import os
import poplib
import random
import shutil
import signal
import subprocess
import sys

import pop3lib as P

rng = random.Random(5034)
d = P.tmpdir("poplib-curl-socat")
box = os.path.join(d, "alice.mbox")
msgs = [P.message(rng, i) for i in range(60)]
msgs.append(b"Subject: no final newline\n\nlast line without newline")
with open(box, "wb") as f:
    f.write(P.mbox_of(msgs)[:-1])   # the last message ends without a newline
with open(box, "rb") as f:
    msgs = P.split_mbox(f.read())
assert len(msgs) == 61

port = P.free_port()
cmd = P.socat_exec(d, [P.POP3D, "--passwd", P.PASSWD, "--mailbox", f"{d}/%u.mbox",
                       "--log", f"{d}/pop3d.log", "--login-delay", "0",
                       *P.root_args(), *P.state_args()])
P.give_to_server(d)
socat = subprocess.Popen(["timeout", "120", "socat", "-lf", os.path.join(d, "socat.log"),
                          f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                          cmd])
try:
    P.wait_port(port)
    # poplib: STAT, LIST, UIDL, RETR everything, TOP, DELE some.
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    c.user("alice")
    c.pass_("secret")
    count, size = c.stat()
    assert count == 61, count
    assert size == sum(len(P.wire_form(m)) for m in msgs), size
    _, listing, _ = c.list()
    for n, line in enumerate(listing, 1):
        num, octets = line.split()
        assert int(num) == n and int(octets) == len(P.wire_form(msgs[n - 1])), line
    _, uidls, _ = c.uidl()
    uids = [u.split()[1] for u in uidls]
    assert len(set(uids)) == 61
    for n in range(1, 62):
        _, lines, octets = c.retr(n)
        # poplib strips line ends and the stuffing; compare line by line.
        want = P.wire_form(msgs[n - 1]).split(b"\r\n")[:-1]
        assert lines == want, f"RETR {n} differs"
    _, top, _ = c.top(1, 0)
    assert b"" in top and top.index(b"") == len(top) - 1, "TOP 1 0 is header + empty line"
    for n in (1, 2, 30, 61):
        c.dele(n)
    c.quit()
    with open(box, "rb") as f:
        after = P.split_mbox(f.read())
    assert after == [m for i, m in enumerate(msgs, 1) if i not in (1, 2, 30, 61)]

    # A second poplib session sees the same UIDLs for the survivors.
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    c.user("alice")
    c.pass_("secret")
    _, uidls2, _ = c.uidl()
    kept = [u for i, u in enumerate(uids, 1) if i not in (1, 2, 30, 61)]
    assert [u.split()[1] for u in uidls2] == kept, "UIDLs changed across sessions"
    c.quit()

    # curl: list, retrieve, delete.
    base = f"pop3://127.0.0.1:{port}"
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "-u", "alice:secret", base + "/"],
                         check=True, capture_output=True).stdout
    assert len(out.splitlines()) == 57, out[:200]
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "-u", "alice:secret", base + "/3"],
                         check=True, capture_output=True).stdout
    assert out == P.wire_form(after[2]), "curl RETR 3 differs"
    subprocess.run(["curl", "-sS", "--max-time", "30", "-u", "alice:secret", "-X", "DELE",
                    "-I", base + "/1"], check=True, capture_output=True)
    with open(box, "rb") as f:
        final = P.split_mbox(f.read())
    assert final == after[1:], "curl DELE did not remove exactly message 1"
    print("ok: poplib and curl through socat")
finally:
    socat.send_signal(signal.SIGTERM)
    socat.wait(timeout=10)
