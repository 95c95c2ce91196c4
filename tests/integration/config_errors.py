"""Usage and configuration errors never reach the client as text (issue 20).

Under inetd, xinetd, systemd (Accept=yes) and stunnel, stdin, stdout and
stderr are all the client's socket. A bad option or a bad configuration must
give the client exactly one "-ERR [SYS/TEMP] ..." line and a close, and the
administrator one log line that names the option and says what was found and
what was expected. Also: the start-up checks (passwd file, --user, templates
and their fixed directory), --recover's report and exit status, the owner of
a refused mailbox by uid and name, malformed passwd lines with their reason
once per session, an empty maildrop whose directory is missing, "1 message"."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile

import pop3lib as P

ERR = b"-ERR [SYS/TEMP] "
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def shared_dir():
    """Files the --user account (nobody) reads: a fresh 0755 directory in /tmp."""
    d = tempfile.mkdtemp(prefix="pop3d-config-errors-")
    os.chmod(d, 0o755)
    return d


def on_socket(args, stdin=b"QUIT\r\n", argv0=None):
    """pop3d (or argv0 args, which runs it) as xinetd starts it: fds 0, 1 and 2
    one end of a socket pair. Returns (everything the client read until the
    close, exit status)."""
    ours, theirs = socket.socketpair()
    cmd = ["unshare", "-m", argv0, *args] if argv0 else [P.POP3D, *args]
    p = subprocess.Popen(cmd, stdin=theirs, stdout=theirs, stderr=theirs)
    theirs.close()
    try:           # a server that did start must end: QUIT, then EOF
        if stdin:
            ours.sendall(stdin)
        ours.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass       # it refused and closed before reading: what it wrote is still there
    ours.settimeout(60)
    got = b""
    while True:
        try:
            chunk = ours.recv(65536)
        except ConnectionResetError:   # closed with our input unread: what came is lost
            got += b"<reset>"
            break
        if not chunk:
            break
        got += chunk
    ours.close()
    return got, p.wait(timeout=60)


def one_err_line(got):
    return got.startswith(ERR) and got.endswith(b"\r\n") and got.count(b"\n") == 1


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


d = shared_dir()
log = os.path.join(d, "log")
state = P.state_args()

# ---- 1. Usage errors: one -ERR line on the socket, the reason in the log ----
usage_cases = [
    (["--journal-dirr=x"], b"--journal-dirr=x"),
    (["--timeout=10m"], b"--timeout 10m"),
    (["--timeout"], b"--timeout"),
    (["-Z"], b"-Z"),
    (["--lock", "nfs"], b"--lock nfs"),
    (["extra-argument"], b"extra-argument"),
]
for args, named in usage_cases:
    for where in ("before", "after"):
        os.makedirs(d, exist_ok=True)
        open(log, "wb").close()
        full = ["--log", log, *args] if where == "before" else [*args, "--log", log]
        if args == ["--timeout"] and where == "after":
            continue    # "--timeout --log" would take --log as its argument
        got, rc = on_socket(full, stdin=b"CAPA\r\nQUIT\r\n")
        check(one_err_line(got) and rc == 64,
              f"{args} (--log {where}): one -ERR line, exit 64 (got {got[:200]!r}, exit {rc})")
        text = read(log)
        check(named in text and b"usage error" in text and text.count(b"\n") == 1,
              f"{args} (--log {where}): one log line naming it ({text!r})")
# No --log at all: the reason goes to syslog; the socket still sees only the line.
for args, _ in usage_cases[:2]:
    got, rc = on_socket(args, stdin=b"CAPA\r\nQUIT\r\n")
    check(one_err_line(got) and rc == 64 and b"Usage" not in got and b"--help" not in got,
          f"{args} without --log: nothing but the -ERR line reaches the client ({got[:200]!r})")

# ... and the reason did go to syslog, facility mail: a private /dev/log (a
# tmpfs over /dev in a mount namespace of its own, so the host's stays as it is).
if P.as_root() and shutil.which("unshare"):
    ld = tempfile.mkdtemp(prefix="pop3d-syslog-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(ld, "log"))
    script = ('mount -t tmpfs none /dev && : > /dev/log && mount --bind "$1" /dev/log && '
              'shift && exec "$@"')
    got, rc = on_socket(["-c", script, "sh", os.path.join(ld, "log"), P.POP3D,
                         "--journal-dirr=x"], argv0="sh")
    sock.settimeout(10)
    try:
        logged = sock.recv(4096)
    except socket.timeout:
        logged = b""
    sock.close()
    shutil.rmtree(ld, ignore_errors=True)
    check(one_err_line(got) and rc == 64, f"private /dev/log: the client's one line ({got!r}, {rc})")
    # <19>: facility mail (2) * 8 + LOG_ERR (3).
    check(logged.startswith(b"<19>") and b"--journal-dirr=x" in logged,
          f"... and syslog (facility mail) has the reason ({logged!r})")
else:
    print("skipped: the syslog check (needs root and unshare)")

# Not a socket (an administrator at a terminal, a script): the reason and a
# pointer to --help on stderr; stdout still gets the client's line.
r = subprocess.run([P.POP3D, "--log", log, "--journal-dirr=x"], input=b"", capture_output=True,
                   timeout=60)
check(r.returncode == 64 and one_err_line(r.stdout) and b"--journal-dirr=x" in r.stderr and
      b"--help" in r.stderr and b"Usage:" not in r.stderr,
      f"stderr a pipe: the reason and 'Try pop3d --help' there ({r.stderr!r})")
# --help, --version: as before.
r = subprocess.run([P.POP3D, "--help"], capture_output=True, timeout=60)
check(r.returncode == 0 and r.stdout.startswith(b"Usage: pop3d") and r.stderr == b"",
      "--help prints the usage on stdout, exit 0")
r = subprocess.run([P.POP3D, "--version"], capture_output=True, timeout=60)
check(r.returncode == 0 and r.stdout.startswith(b"pop3d ") and r.stderr == b"", "--version")

# ---- 2. Start-up checks: each one log line naming the option, before any greeting ----
passwd = os.path.join(d, "passwd")
with open(passwd, "w") as f:
    f.write(open(P.PASSWD).read())
os.chmod(passwd, 0o644)
missing_dir = os.path.join(d, "nonexistent-dir")
config_cases = [
    (["--passwd", os.path.join(d, "missing")], [b"--passwd", b"No such file"]),
    (["--passwd", d], [b"--passwd", b"directory", b"expected a regular file"]),
    (["--passwd", passwd, "--user", "no-such-account-here"], [b"--user", b"no such account"]),
    (["--mailbox", os.path.join(missing_dir, "%u")],
     [b"--mailbox", missing_dir.encode(), b"No such file", b"expected an existing directory"]),
    (["--mailbox", "relative/%u"], [b"--mailbox", b"not an absolute path"]),
    (["--mailbox", "/var/mail/%U"], [b"--mailbox", b"unknown escape %U"]),
    (["--mailbox", os.path.join(d, "%u"), "--index-dir", "idx/%u"],
     [b"--index-dir", b"not an absolute path"]),
    (["--mailbox", os.path.join(d, "%u"), "--journal-dir", os.path.join(missing_dir, "j")],
     [b"--journal-dir", missing_dir.encode(), b"expected an existing directory"]),
    (["--mailbox", os.path.join(d, "%u"), "--journal-dir", "/var/lib/%x"],
     [b"--journal-dir", b"unknown escape %x"]),
]
for args, wants in config_cases:
    open(log, "wb").close()
    got, rc = on_socket(["--log", log, *state, *args], stdin=b"CAPA\r\nQUIT\r\n")
    text = read(log)
    check(one_err_line(got) and rc == 78,
          f"{args}: one -ERR line, exit 78 (got {got[:200]!r}, exit {rc})")
    check(all(w in text for w in wants) and text.count(b"\n") == 1,
          f"{args}: one log line with {wants} ({text!r})")
# The client's line names no option and no path.
got, rc = on_socket(["--log", log, *state, "--mailbox", os.path.join(missing_dir, "%u")])
check(one_err_line(got) and b"mailbox" not in got and missing_dir.encode() not in got and
      b"--" not in got, f"the client's line names no option and no path ({got!r})")
# A good template with a missing directory under %u is no start-up error.
got, rc = on_socket(["--log", log, *state, "--passwd", passwd, *P.root_args(),
                     "--mailbox", os.path.join(d, "%u", "inbox")], stdin=b"QUIT\r\n")
check(got.startswith(b"+OK") and rc == 0, f"a template whose %u directory is missing serves ({got!r})")

# ---- 3. A missing mailbox directory at login: an empty maildrop, and a log line ----
open(log, "wb").close()
r = subprocess.run([P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(d, "%u", "inbox"),
                    "--log", log, "--login-delay", "0", *P.root_args(), *state],
                   input=b"USER alice\r\nPASS secret\r\nQUIT\r\n", capture_output=True, timeout=60)
text = read(log)
check(b"+OK alice has 0 messages" in r.stdout, f"missing directory: an empty maildrop ({r.stdout!r})")
check(b"directory" in text and b"does not exist" in text and
      os.path.join(d, "alice").encode() in text, f"... and the log says the directory is missing ({text!r})")

# ---- 4. Malformed passwd lines: why, once per session; "1 message" ----
hashed = subprocess.run([P.POP3D, "--hash"], input=b"pw\n", capture_output=True,
                        timeout=60).stdout.decode().strip()
with open(passwd, "w") as f:
    f.write("nocolon\n"                      # line 1
            "eve:\n"                         # line 2
            "mal:h:relative/%u\n"            # line 3
            "esc:h:/m/%U\n"                  # line 4
            f"carol:{hashed}\n")             # line 5
os.chmod(passwd, 0o644)
box = os.path.join(d, "carol")
with open(box, "wb") as f:
    f.write(P.mbox_of([b"Subject: one\n\nonly one\n"]))
P.give_to_server(d)
os.chown(passwd, 0, 0)
open(log, "wb").close()
session = (b"USER carol\r\nPASS wrong\r\nUSER carol\r\nPASS wrong2\r\n"
           b"USER carol\r\nPASS pw\r\nSTAT\r\nQUIT\r\n")
r = subprocess.run([P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(d, "%u"), "--log", log,
                    "--login-delay", "0", *P.root_args(), *state], input=session,
                   capture_output=True, timeout=60)
text = read(log).decode(errors="replace")
check("+OK carol has 1 message (" in r.stdout.decode(), f"'1 message' ({r.stdout!r})")
for line, why in ((1, "no ':'"), (2, "empty hash"), (3, "not an absolute path"), (4, "% escape")):
    n = text.count(f"line {line}: malformed")
    check(n == 1 and why in text, f"passwd line {line}: once per session ({n}), says {why!r}")

# ---- 5. A mailbox of another owner: uid and name found, uid and name expected ----
LOGIN = b"USER carol\r\nPASS pw\r\nQUIT\r\n"


def refused_login(mailbox_dir, *extra):
    """carol's login with a fresh log: pop3d's answers and the log's text."""
    open(log, "wb").close()
    r = subprocess.run([P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(mailbox_dir, "%u"),
                        "--log", log, "--login-delay", "0", *extra, *state],
                       input=LOGIN, capture_output=True, timeout=60)
    return r.stdout, read(log).decode(errors="replace")


if P.as_root():
    os.chown(box, 0, 0)
    os.chmod(box, 0o600)
    out, text = refused_login(d, "--user", "nobody")
    nobody = pwd.getpwnam("nobody").pw_uid
    check(b"-ERR [SYS/PERM]" in out and b"Permission denied" not in out,
          f"root's mailbox refused, the client told why ({out!r})")
    check("uid 0 (root)" in text and f"uid {nobody} (nobody)" in text and "mode 0600" in text
          and "regular file" in text and "Permission denied" not in text,
          f"... the log names the owner found and the one expected ({text!r})")
    # Without --user, as root: a root-owned mailbox is not served as root; the log says whose it is.
    out, text = refused_login(d)
    check("uid 0 (root)" in text and "mode 0600" in text and "expected" in text,
          f"no --user: the root-owned mailbox's owner and mode are named ({text!r})")
    os.chown(box, nobody, pwd.getpwnam("nobody").pw_gid)
    # A directory on the way that nobody may not search: named, with its mode and owner.
    closed = os.path.join(d, "closed")
    os.makedirs(closed, exist_ok=True)
    os.chown(closed, 0, 0)
    os.chmod(closed, 0o700)
    out, text = refused_login(closed, "--user", "nobody")
    check(b"-ERR [SYS/PERM]" in out and b"Permission denied" not in out,
          f"a mailbox behind a closed directory: refused ({out!r})")
    check(f"directory {closed} denies search" in text and "mode 0700" in text and
          "uid 0 (root)" in text and f"uid {nobody} (nobody)" in text and
          "Permission denied" not in text, f"... the log names the directory in the way ({text!r})")

# ---- 6. --recover: what it did, on stdout and in the log; 66 for no such mailbox ----
open(log, "wb").close()
r = subprocess.run([P.POP3D, "--recover", os.path.join(d, "no-such-box"), "--log", log],
                   capture_output=True, timeout=60)
check(r.returncode == 66 and b"no such mailbox" in r.stderr and b"no such mailbox" in read(log),
      f"--recover of a missing mailbox: 'no such mailbox', exit 66 ({r.returncode}, {r.stderr!r})")
r = subprocess.run([P.POP3D, "--recover", box, "--log", log], capture_output=True, timeout=60)
check(r.returncode == 0 and b"nothing to recover" in r.stdout and b"nothing to recover" in read(log),
      f"--recover without a journal: 'nothing to recover', exit 0 ({r.returncode}, {r.stdout!r})")

fault = os.path.join(P.ROOT, "tests", "pop3d-fault")
if os.path.exists(fault):
    rdir = shared_dir()
    rbox = os.path.join(rdir, "alice.mbox")
    msgs = [b"Subject: m%d\n\n%s\n" % (i, b"x" * 5000 * i) for i in range(1, 6)]
    # Kill the update after its journal is synced, before the mailbox is touched.
    for step in range(2, 40):
        with open(rbox, "wb") as f:
            f.write(P.mbox_of(msgs))
        for leftover in os.listdir(rdir):
            if leftover != "alice.mbox":
                os.unlink(os.path.join(rdir, leftover))
        s = P.Pop3Pipe(os.path.join(rdir, "%u.mbox"), binary=fault,
                       env=dict(os.environ, POP3D_KILL_AT_STEP=str(step)))
        s.cmd("USER alice")
        assert s.cmd("PASS secret").startswith(b"+OK")
        for n in (1, 3):
            assert s.cmd(f"DELE {n}").startswith(b"+OK")
        s.p.stdin.write(b"QUIT\r\n")
        s.p.stdin.close()
        s.p.stdout.read()
        if s.p.wait(timeout=60) != -signal.SIGKILL:
            break
        if P.split_mbox(read(rbox)) != msgs:
            continue   # past the start of the move: not the case wanted here
        open(log, "wb").close()
        r = subprocess.run([P.POP3D, "--recover", rbox, "--log", log], capture_output=True,
                           timeout=60)
        got = P.split_mbox(read(rbox))
        if got == msgs:
            continue   # the journal was not complete yet: nothing applied
        check(r.returncode == 0 and b"recovered: 2 deletions applied" in r.stdout and
              b"recovered: 2 deletions applied" in read(log) and got == [msgs[1], msgs[3], msgs[4]],
              f"--recover after a kill at update step {step}: 'recovered: 2 deletions applied' "
              f"({r.returncode}, {r.stdout!r}, {r.stderr!r})")
        break
    else:
        check(False, "no update step left a complete journal behind")
    shutil.rmtree(rdir, ignore_errors=True)
else:
    print("skipped: --recover after a crash (no tests/pop3d-fault; make tests/pop3d-fault)")

shutil.rmtree(d, ignore_errors=True)
if failures:
    print(f"{len(failures)} failed")
    raise SystemExit(1)
