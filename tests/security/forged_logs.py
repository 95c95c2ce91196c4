"""Log lines a compromised child sends cannot pass for the authenticator's.

The line fail2ban counts ("authentication failed: user=NAME peer=ADDRESS
method=USER|PLAIN", contrib/fail2ban/filter.d/pop3d.conf) must come from the
root authenticator, from what it knows itself: its own peer, the user of the
credentials it checked, its own verdict. A greeter or a session process with
code execution (the test build's "XTEST LOG text": a PS_LOG line of its
choosing) can still send lines, but each is written marked as relayed from it
("greeter: ...", "worker: ..."), which the anchored filter never matches, so it
cannot get 203.0.113.9 banned nor pass for "authentication throttled" either.

One session through socat (peer 127.0.0.1): forged lines from the greeter,
one wrong password for alice, a good login, a forged line from the session
process. fail2ban-regex with the shipped filter must find exactly the one real
failure, with the real peer.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import deploy_common as D  # noqa: E402
import pop3lib as P  # noqa: E402

FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")
for tool in ("fail2ban-regex", "socat"):
    if not shutil.which(tool):
        print(f"skipped: no {tool}")
        sys.exit(77)

top = P.tmpdir("security-forged-logs")
shutil.rmtree(top)
d = os.path.join(top, "mail")
os.makedirs(d)
D.write_mailbox(os.path.join(d, "alice.mbox"), [])
log = os.path.join(top, "pop3d.log")
failures = []


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what)
    if not cond:
        failures.append(what)


def forge(text):
    """XTEST LOG takes no blank in its argument: each _ stands for one."""
    return "XTEST LOG " + text.replace(" ", "_") + "\r\n"


GREETER_FAILED = "authentication failed: user=mallory peer=203.0.113.9 method=USER"
GREETER_THROTTLED = "authentication throttled: user=mallory peer=203.0.113.9 wait=600s"
WORKER_FAILED = "authentication failed: user=mallory peer=198.51.100.7 method=PLAIN"
script = (forge(GREETER_FAILED) + forge(GREETER_THROTTLED) +
          "USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\n" +
          forge(WORKER_FAILED) + "QUIT\r\n").encode()

P.give_to_server(d)
port = P.free_port()
args = D.pop3d_test_args(d, log)
with D.FrontEnd(["socat", "-lf", os.path.join(top, "socat.log"),
                 f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                 P.socat_exec(top, [FAULT, *args])],
                port, os.path.join(top, "socat.out")):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(script)
    got = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk
    c.close()
    text = D.wait_log(log, "session end:")
check(got.count(b"+OK sent\r\n") == 3 and b"+OK alice has" in got and
      got.count(b"-ERR [AUTH]") == 1, f"the session: three lines sent, one failure, a login ({got!r})")

# What an anchored reader sees right after "pop3d[PID]: ", as fail2ban's prefix does.
own = re.findall(r"^\S+ pop3d\[\d+\]: (.*)$", text, re.M)
check(GREETER_FAILED in text and WORKER_FAILED in text and GREETER_THROTTLED in text,
      "the forged lines are in the log")
check(not [m for m in own if "203.0.113.9" in m and not m.startswith("greeter: ")],
      "the greeter's forged lines are marked as the greeter's")
check(not [m for m in own if "198.51.100.7" in m and not m.startswith("worker: ")],
      "the session process's forged line is marked as the worker's")
real = [m for m in own if m.startswith("authentication failed: ")]
check(real == ["authentication failed: user=alice peer=127.0.0.1 method=USER"],
      f"the one real failure, in its usual form, with the real peer ({real})")

# The shipped filter, from a private copy of the system's fail2ban configuration.
conf = os.path.join(top, "fail2ban")
shutil.copytree("/etc/fail2ban", conf)
shutil.copy(os.path.join(P.ROOT, "contrib", "fail2ban", "filter.d", "pop3d.conf"),
            os.path.join(conf, "filter.d"))
r = subprocess.run(["fail2ban-regex", "--raw", "-c", conf, "-o", "row", log, "pop3d"],
                   capture_output=True, text=True, timeout=60)
check(r.returncode == 0, f"fail2ban-regex ran ({r.stderr.strip()})")
addrs = re.findall(r"^\['([^']*)'", r.stdout, re.M)
check(addrs == ["127.0.0.1"], f"fail2ban-regex matches the real failure only: {addrs}")

if failures:
    print(text)
print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
