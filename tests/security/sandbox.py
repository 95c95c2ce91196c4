"""The sandboxes from inside, with the test build (tests/pop3d-fault), whose
XTEST command probes them:

- the greeter makes a forbidden system call: it dies, the log says "sandbox
  violation" with the call's name, the connection closes, no mailbox is
  touched;
- the greeter sends the authenticator garbage (short, truncated, oversized,
  unknown type, NUL in the user name, a handoff nobody allowed, a packet too
  large): each is refused and logged, the connection closes, the
  authenticator exits 1 by itself (it never crashes);
- after login, a forbidden system call ends the session process the same
  way; --lock with flock (an abstract AF_UNIX name) is allowed;
- after login, the session process cannot open /etc/passwd nor another
  virtual user's mailbox beside its own (EACCES, where Landlock is present);
- a login pipelined with commands in one write gets every answer, in order,
  byte for byte the same through a pipe and through socat;
- started as an ordinary user, the greeter is still a separate process with
  NoNewPrivs and seccomp, neither chrooted nor another uid.
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import deploy_common as D  # noqa: E402
import pop3lib as P  # noqa: E402

FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")
top = P.tmpdir("security-sandbox")
shutil.rmtree(top)
d = os.path.join(top, "mail")
os.makedirs(d)
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    demo = f.read()
boxes = {u: os.path.join(d, f"{u}.mbox") for u in ("alice", "bob")}
for path in boxes.values():
    with open(path, "wb") as f:
        f.write(demo)
log = os.path.join(top, "pop3d.log")
failures = []


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what)
    if not cond:
        failures.append(what)


def run(script, binary=FAULT, extra=(), **kw):
    """One session on pipes: (exit status, output, new log text)."""
    P.give_to_server(d)
    start = os.path.getsize(log) if os.path.exists(log) else 0
    r = subprocess.run([binary, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"),
                        "--log", log, "--login-delay", "0", *P.root_args(), *P.state_args(),
                        *extra],
                       input=script.encode(), capture_output=True, timeout=30, **kw)
    with open(log) as f:
        f.seek(start)
        return r.returncode, r.stdout, f.read()


def untouched():
    return all(open(p, "rb").read() == demo for p in boxes.values()) and \
        not [n for n in os.listdir(d) if n.endswith((".lock", ".pop3d-journal"))]


# ---- a forbidden system call in the greeter ----
rc, out, text = run("USER alice\r\nXTEST SYSCALL\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
check(rc == 1, f"greeter violation: exit status 1 (got {rc})")
check(b"socket returned" not in out and b"+OK alice has" not in out and
      out.endswith(b"+OK send PASS\r\n"), f"greeter violation: the connection ends there ({out!r})")
check("sandbox violation: the greeter" in text and "(socket)" in text,
      "greeter violation: logged with the call's name")
check("login:" not in text and untouched(), "greeter violation: no login, no mailbox touched")

# ---- garbage from the greeter ----
for kind in ("short", "truncated", "oversized", "type", "nul", "handoff", "huge"):
    rc, out, text = run(f"XTEST GARBAGE {kind}\r\nUSER alice\r\nPASS secret\r\nQUIT\r\n")
    check(rc == 1 and "refused a malformed message from the greeter" in text and
          b"+OK alice has" not in out and "login:" not in text,
          f"garbage '{kind}': refused and logged, no login (exit {rc})")
check(untouched(), "garbage: no mailbox touched")

# ---- a forbidden system call after login ----
rc, out, text = run("USER alice\r\nPASS secret\r\nXTEST SYSCALL\r\nSTAT\r\nQUIT\r\n")
check(rc == 1 and b"+OK alice has" in out and b"socket returned" not in out and b"+OK 3 " not in out,
      f"session violation: it ends there (exit {rc})")
check("sandbox violation: the session process" in text and "(socket)" in text,
      "session violation: logged with the call's name")
check(untouched(), "session violation: no mailbox touched")

rc, out, text = run("USER alice\r\nPASS secret\r\nXTEST DGRAM\r\nSTAT\r\nQUIT\r\n")
check(rc == 1 and b"socket returned" not in out and "sandbox violation: the session process" in text,
      "session process: no AF_UNIX datagram socket (it could reach /dev/log unconnected)")

# ---- --lock with flock: the session lock is an abstract AF_UNIX name, allowed ----
P.give_to_server(d)
hold = subprocess.Popen([FAULT, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"),
                         "--log", log, "--login-delay", "0", "--lock", "dotlock,fcntl,flock",
                         *P.root_args(), *P.state_args()], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
hold.stdin.write(b"USER alice\r\nPASS secret\r\n")
hold.stdin.flush()
first = [hold.stdout.readline() for _ in range(3)][2]
rc, out, text = run("USER alice\r\nPASS secret\r\nQUIT\r\n", extra=["--lock", "dotlock,fcntl,flock"])
hold.stdin.write(b"QUIT\r\n")
hold.stdin.close()
hold.wait(timeout=30)
check(first.startswith(b"+OK alice has") and b"-ERR [IN-USE]" in out and
      "sandbox violation" not in text, "--lock ...,flock: served, and a second session is [IN-USE]")

# ---- the session process's view of the files ----
rc, out, text = run("USER alice\r\nPASS secret\r\nXTEST OPEN /etc/passwd\r\n"
                    f"XTEST OPEN {boxes['bob']}\r\nXTEST OPEN {boxes['alice']}\r\n"
                    "RETR 1\r\nQUIT\r\n")
lines = out.split(b"\r\n")
check(rc == 0 and b"+OK alice has 3 messages" in out, f"after login: the session serves (exit {rc})")
if "serving without Landlock" in text:
    print("note    this kernel has no Landlock: the open checks are not made")
else:
    opens = [l for l in lines if l.startswith((b"+OK opened", b"-ERR E"))]
    check(opens == [b"-ERR EACCES"] * 3,
          f"after login: /etc/passwd, bob's and even its own mailbox by path: EACCES ({opens})")
check(P.split_mbox(demo)[0].split(b"\n")[0] in out.replace(b"\r\n", b"\n"),
      "after login: RETR reads the mailbox through the keeper's descriptor")

# ---- pipelined login, through a pipe and through socat ----
script = b"USER alice\r\nPASS secret\r\nSTAT\r\nUIDL\r\nRETR 1\r\nQUIT\r\n"
rc, piped, _ = run(script.decode(), binary=P.POP3D)
status = [l.split(b" ")[:2] for l in piped.split(b"\r\n") if l.startswith(b"+OK ")]
want = [[b"+OK", b"pop3d"], [b"+OK", b"send"], [b"+OK", b"alice"], [b"+OK", b"3"],
        [b"+OK", b"unique-id"], [b"+OK", b"%d" % len(P.wire_form(P.split_mbox(demo)[0]))],
        [b"+OK", b"pop3d"]]
check(rc == 0 and status == want and piped.endswith(b"signing off (3 messages left)\r\n"),
      f"pipelined: all six answers in order through a pipe ({status})")
P.give_to_server(d)
args = ["--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"), "--log", log,
        "--login-delay", "0", *P.root_args(), *P.state_args()]
with D.socat(top, args) as fe:
    c = socket.create_connection(("127.0.0.1", fe.port), timeout=30)
    c.sendall(script)   # one write: the greeter reads the commands after PASS too
    got = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk
    c.close()
check(got == piped, "pipelined: byte for byte the same through socat")

# ---- as an ordinary user ----
if P.as_root():
    nobody = pwd.getpwnam("nobody")
    box = os.path.join(top, "plain", "alice.mbox")
    os.makedirs(os.path.dirname(box))
    shutil.copy(boxes["alice"], box)
    for p in (os.path.dirname(box), box):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)

    def as_nobody():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    # nobody runs the binary and reads the passwd file: copies it can reach.
    p = subprocess.Popen([P.shared_copy(P.POP3D, top), "--passwd", P.shared_copy(P.PASSWD, top),
                          "--mailbox", os.path.join(os.path.dirname(box), "%u.mbox"),
                          "--log", "/dev/null", "--state-dir", "none"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=as_nobody)
    p.stdout.readline()
    g = P.reader_of(p.pid)
    st = P.proc_status(g)
    check(g != p.pid and st["Uid"][0] == str(nobody.pw_uid) and st["NoNewPrivs"] == ["1"] and
          st["Seccomp"] == ["2"] and os.readlink(f"/proc/{g}/root") == "/",
          "ordinary user: a separate greeter, NoNewPrivs and seccomp, not chrooted")
    out, _ = p.communicate(b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n", timeout=30)
    check(p.returncode == 0 and b"+OK 3 " in out, "ordinary user: the session works")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
