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
print("ok: idle timer and session lifetime end the session, nothing deleted")
