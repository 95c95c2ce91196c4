"""The command line of the contract: usage errors, --version, --help, --hash
(and a login with the hash it makes), %h without --user, and silence on
stderr while serving."""
import os
import subprocess

import pop3lib as P


def run(args, stdin=b""):
    return subprocess.run([P.POP3D, *args], input=stdin, capture_output=True, timeout=60)


r = run(["--version"])
assert r.returncode == 0 and r.stdout.startswith(b"pop3d "), r
r = run(["--help"])
assert r.returncode == 0
for opt in (b"--passwd", b"--mailbox", b"--user", b"--timeout", b"--log", b"--hash",
            b"--version", b"--help", b"--lock", b"--tls-only", b"--recover"):
    assert opt in r.stdout, opt
for bad in (["--timeout", "0"], ["--timeout", "junk"], ["-t", "-5"], ["--bogus"],
            ["extra-argument"], ["--lock", "nfs"], ["--max-messages", "0"],
            ["--max-messages", "1000001"], ["--max-mailbox-size", "2T"]):   # past limits.h
    r = run(bad)
    assert r.returncode == 64, (bad, r.returncode)
    # The client's one line (config_errors.py: never the usage); the reason on a pipe's stderr.
    assert r.stdout.startswith(b"-ERR [SYS/TEMP] ") and r.stdout.count(b"\n") == 1, (bad, r.stdout)
    assert b"Try 'pop3d --help'" in r.stderr and b"Usage:" not in r.stderr, (bad, r.stderr)

# --hash: one line from stdin, the newline not part of the password.
r = run(["--hash"], stdin=b"pass word\n")
assert r.returncode == 0, r
h = r.stdout.decode()
assert h.endswith("\n") and h.count("\n") == 1 and h.startswith("$"), h
# An empty password never logs in: --hash refuses it, a usage error, no hash printed.
for empty in (b"\n", b"\r\n", b""):
    r = run(["--hash"], stdin=empty)
    assert r.returncode == 64 and r.stdout == b"", (empty, r)
    assert b"password" in r.stderr, r.stderr
d = P.tmpdir("cli")
passwd = os.path.join(d, "passwd")
with open(passwd, "w") as f:
    f.write(f"# made by pop3d --hash\ncarol:{h}")
os.chmod(passwd, 0o644)
P.give_to_server(d)
base = [P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(d, "%u.mbox"),
        "--log", os.path.join(d, "log"), "--login-delay", "0", *P.root_args(), *P.state_args()]
for pw, want in ((b"pass word", b"+OK carol has 0 messages"), (b"pass word\r", b"-ERR [AUTH]"),
                 (b"pass", b"-ERR [AUTH]")):
    r = subprocess.run(base, input=b"USER carol\r\nPASS " + pw + b"\r\nQUIT\r\n",
                       capture_output=True, timeout=60)
    lines = r.stdout.split(b"\r\n")
    assert lines[2].startswith(want), (pw, lines)
    assert r.returncode == 0, r.returncode     # QUIT ends it, even after a failed login
    assert r.stderr == b"", r.stderr           # nothing on stderr while serving

# %h for virtual users needs --user: a configuration error without one.
if not P.as_root():
    r = subprocess.run([P.POP3D, "--passwd", passwd, "--mailbox", "%h/mbox", "--log",
                        os.path.join(d, "log"), *P.state_args()], input=b"QUIT\r\n", capture_output=True)
    assert r.returncode == 78, r.returncode
    assert r.stdout.startswith(b"-ERR [SYS/TEMP] "), r.stdout
r = subprocess.run([P.POP3D, "--passwd", passwd, "--mailbox", "%h/mbox", "--user", "nobody",
                    "--log", os.path.join(d, "log"), *P.state_args()], input=b"QUIT\r\n", capture_output=True)
assert r.returncode == 0 and r.stdout.startswith(b"+OK"), r
r = subprocess.run([P.POP3D, "--passwd", os.path.join(d, "missing"), "--log",
                    os.path.join(d, "log"), *P.root_args(), *P.state_args()], input=b"QUIT\r\n",
                   capture_output=True)
assert r.returncode == 78, r.returncode
print("ok: usage errors, --version, --help, --hash round trip and no empty password, %h rule, quiet stderr")

# Virtual users without --user: pop3d greets whoever starts it; as root it
# serves each mailbox as the mailbox's owner, and never as root.
r = subprocess.run([P.POP3D, "-P", "/dev/null", "-m", os.path.join(d, "%u"), *P.state_args()],
                   input=b"CAPA\r\nQUIT\r\n", capture_output=True, timeout=60)
assert r.stdout.startswith(b"+OK") and r.returncode == 0, r
if P.as_root():
    import pwd
    nobody = pwd.getpwnam("nobody")
    owned = os.path.join(d, "owned")
    os.makedirs(owned, exist_ok=True)
    box = os.path.join(owned, "carol.mbox")
    with open(box, "wb") as f:
        f.write(P.mbox_of([b"Subject: hi\n\nhello\n"]))
    os.chown(box, 0, 0)     # a rerun finds the file still given to nobody
    noargs = [P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(owned, "%u.mbox"),
              "--log", os.path.join(d, "log"), "--login-delay", "0", *P.state_args()]
    login = b"USER carol\r\nPASS pass word\r\nSTAT\r\nQUIT\r\n"
    r = subprocess.run(noargs, input=login, capture_output=True, timeout=60)
    assert b"-ERR [SYS/PERM]" in r.stdout, r.stdout   # root's file: not served as root
    os.chown(box, nobody.pw_uid, nobody.pw_gid)
    r = subprocess.run(noargs, input=login, capture_output=True, timeout=60)
    assert b"+OK 1 " in r.stdout, r.stdout             # served as its owner
print("ok: greets without --user; as root serves a mailbox as its owner, never as root")
