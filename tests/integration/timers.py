"""The idle autologout timer and the session lifetime end a session without
applying its deletions."""
import os
import time

import pop3lib as P

d = P.tmpdir("timers")
box = os.path.join(d, "alice.mbox")
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    original = f.read()

for opts, expect in ((["--timeout", "1"], b"autologout"),
                     (["--max-session-time", "2", "--timeout", "60"], b"time limit")):
    with open(box, "wb") as f:
        f.write(original)
    s = P.Pop3Pipe(os.path.join(d, "%u.mbox"), extra=opts)
    assert s.cmd("USER alice").startswith(b"+OK")
    assert s.cmd("PASS secret").startswith(b"+OK")
    assert s.cmd("DELE 1").startswith(b"+OK")
    if b"limit" in expect:
        assert s.cmd("NOOP").startswith(b"+OK")  # still within its lifetime
    started = time.time()
    line = s.p.stdout.readline()   # the server speaks first when a timer runs out
    waited = time.time() - started
    assert line.startswith(b"-ERR") and expect in line, line
    rc, rest = s.close()
    assert rc == 1, f"{opts}: exit status {rc}"
    assert waited < 10, waited
    with open(box, "rb") as f:
        assert f.read() == original, f"{opts}: deletion applied after a timeout"
    with open(s.log, "rb") as f:
        log = f.read()
    assert b"end=timeout" in log, log

# A client that stops reading in the middle of a RETR: the write stalls, and
# the session ends after the timeout (at most a second more), deleting nothing.
big = (b"From stall@example.org Sat Jan  1 00:00:00 2000\nSubject: big\n\n" +
       (b"x" * 70 + b"\n") * 40000 + b"\n" + original)
with open(box, "wb") as f:
    f.write(big)
s = P.Pop3Pipe(os.path.join(d, "%u.mbox"), extra=["--timeout", "2"])
assert s.cmd("USER alice").startswith(b"+OK")
assert s.cmd("PASS secret").startswith(b"+OK")
assert s.cmd("DELE 2").startswith(b"+OK")
s.p.stdin.write(b"RETR 1\r\nQUIT\r\n")   # 2.8 MB: far more than a pipe holds
s.p.stdin.flush()
started = time.time()
rc = s.p.wait(timeout=30)                  # nobody reads its output
waited = time.time() - started
assert rc == 1, f"stalled write: exit status {rc}"
assert 1.5 <= waited < 6, f"stalled write given up after {waited:.1f} s, timeout 2 s"
with open(box, "rb") as f:
    assert f.read() == big, "deletion applied after a stalled write"
with open(s.log, "rb") as f:
    log = f.read()
assert b"end=io-error" in log and b"the client stopped reading" in log, log
s.p.stdout.close()
s.p.stdin.close()
print("ok: idle timer and session lifetime end the session, nothing deleted; "
      "a write stalled for the timeout ends it too")
