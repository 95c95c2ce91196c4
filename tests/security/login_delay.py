"""The delay after a failed login grows with each failure (--login-delay
SECONDS times the failures so far) and stops growing at MAX_LOGIN_DELAY.

Observed with strace, which records every wait pop3d asks for and makes it
return at once (syscall injection), so the test takes no time and measures no
time: it reads the durations pop3d requested. The authenticator waits in
ppoll(2) on the client's end (stdout), so that a client that hangs up during
the delay ends the session at once (tests/security/guessing.py checks that).
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

MAX_LOGIN_DELAY = int(re.search(r"#define MAX_LOGIN_DELAY\s+(\d+)",
                                open(os.path.join(P.ROOT, "limits.h")).read()).group(1))
DEFAULT_LOGIN_DELAY = int(re.search(r"#define DEFAULT_LOGIN_DELAY\s+(\d+)",
                                    open(os.path.join(P.ROOT, "limits.h")).read()).group(1))

if not shutil.which("strace"):
    sys.exit("strace is not installed (apt-get install strace)")
d = P.tmpdir("security-login-delay")
P.give_to_server(d)


def requested_sleeps(delay_args):
    """Three failed logins; the whole seconds of every sleep pop3d asked for."""
    trace = os.path.join(d, "trace")
    cmd = ["strace", "-f", "-qq", "-o", trace, "-e", "trace=ppoll",
           "-e", "inject=ppoll:retval=0",
           P.POP3D, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"),
           "--log", os.path.join(d, "log"), *P.root_args(), "--state-dir", "none", *delay_args]
    script = b"USER alice\r\nPASS wrong\r\nUSER nobody-here\r\nPASS x\r\nUSER alice\r\nPASS y\r\n"
    env = dict(os.environ)   # LeakSanitizer cannot work under ptrace: the ASan stage
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    r = subprocess.run(cmd, input=script, capture_output=True, timeout=60, env=env)
    answers = r.stdout.split(b"\r\n")
    assert answers[2] == answers[4] == b"-ERR [AUTH] Authentication failed", answers
    assert answers[6].startswith(b"-ERR [AUTH] Authentication failed; too many"), answers
    with open(trace) as f:
        text = f.read()
    # The waits on the client's end, stdout (fd 1), in ppoll(2); the greeter's
    # reads of stdin wait in poll(2), which is neither traced nor cut short.
    return [int(s) for s in
            re.findall(r"ppoll\(\[\{fd=1, events=0\}\], 1, \{tv_sec=(\d+), tv_nsec=0\}", text)]


for delay_args, delay in (([], DEFAULT_LOGIN_DELAY), (["--login-delay", "4"], 4)):
    got = requested_sleeps(delay_args)
    want = [min(delay * k, MAX_LOGIN_DELAY) for k in (1, 2, 3)]
    assert got == want, f"{delay_args}: slept {got}, expected {want}"
assert min(4 * 3, MAX_LOGIN_DELAY) < 4 * 3, "the test no longer crosses MAX_LOGIN_DELAY"
assert requested_sleeps(["--login-delay", "0"]) in ([], [0, 0, 0])
print(f"ok: failed logins wait --login-delay x failures (default {DEFAULT_LOGIN_DELAY} s), "
      f"at most MAX_LOGIN_DELAY = {MAX_LOGIN_DELAY} s")
