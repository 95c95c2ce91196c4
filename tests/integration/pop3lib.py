"""Shared helpers for the integration tests: an independent reading of the
contract's mbox rules (to check the server against), mailbox generators, and a
small line-level POP3 client that drives ./pop3d through pipes."""

import os
import random
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The binary under test: ./pop3d, or $POP3D (the sanitizer and valgrind stages).
POP3D = os.path.join(ROOT, os.environ.get("POP3D") or "pop3d")
PASSWD = os.path.join(ROOT, "tests", "scripts", "passwd")
USER, PASSWORD = "alice", "secret"
# The directories a test makes must let the users it runs reach them, whatever
# umask the suite was started with (a root shell's 077, say).
os.umask(0o022)


# Where tmpdir() makes its directories: /tmp, not $TMPDIR nor tests/tmp, which
# may both lie under a 0700 directory that another user cannot search.
SHARED_TMP = "/tmp"
_tmpdirs = {}


def tmpdir(name):
    """The directory of one test's files (NAME: the same directory within one
    test run): fresh, mode 0755, in /tmp, removed when the test exits. The
    files must be reachable by the other users a test runs pop3d or a client
    as (--user nobody, the account, the chrooted pre-login process), so never
    under the source tree, which may sit in a private (0700) directory. Only
    what the runner itself reads (tests/tmp/*.out, stage logs) stays there."""
    if name not in _tmpdirs:
        import atexit
        import tempfile
        d = tempfile.mkdtemp(prefix=f"pop3d-{name}-", dir=SHARED_TMP)
        os.chmod(d, 0o755)
        _tmpdirs[name] = d
        owner = os.getpid()   # a forked child's exit must not remove it
        atexit.register(lambda: os.getpid() == owner and _remove_tree(d))
    return _tmpdirs[name]


def _remove_tree(path):
    """rm -rf PATH, but never into a mount point (a tmpfs or a FUSE file
    system a failed test left mounted): what it shows is not the test's."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            if os.path.ismount(path):
                return
            for entry in os.listdir(path):
                _remove_tree(os.path.join(path, entry))
            os.rmdir(path)
        else:
            os.unlink(path)
    except OSError:
        pass   # a file a still running process of the test made, or removed


def shared_copy(path, d):
    """A copy of the tree's file PATH in directory D (a tmpdir()), mode kept,
    for a process that runs as another user and may not reach the tree."""
    import shutil
    return shutil.copy2(path, os.path.join(d, os.path.basename(path)))


def socat_exec(d, argv):
    """socat's EXEC: address running ARGV, through a script in directory D:
    socat takes at most 512 octets of an address, and the tree's path may be
    long. The script execs, so the process is ARGV[0]'s, as with EXEC:ARGV."""
    import shlex
    import tempfile
    fd, script = tempfile.mkstemp(prefix="socat-exec-", suffix=".sh", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write(f"#!/bin/sh\nexec {shlex.join(argv)}\n")
    os.chmod(script, 0o755)
    return "EXEC:" + script


def as_root():
    return os.geteuid() == 0


def root_args():
    """As root, pop3d serves virtual users as an unprivileged --user."""
    return ["--user", "nobody"] if as_root() else []


def state_args():
    """A state directory of its own (--state-dir) for one pop3d invocation: the
    failed logins of one test never slow another, nor reach /var/lib/pop3d.
    Failures are still counted there, but no attempt is refused for them
    (every --throttle-* limit 0), as --login-delay 0 does for the in-session
    delay; the throttle's own tests set their limits (later options win).
    In tmpdir("state"): a short path, as the tree's may be long (socat takes
    at most 512 octets of EXEC: command line)."""
    import tempfile
    return ["--state-dir", tempfile.mkdtemp(prefix="state-", dir=tmpdir("state")),
            "--throttle-account", "0", "--throttle-known", "0", "--throttle-source", "0"]


def give_to_server(path):
    """As root, the served files must belong to the --user account."""
    if as_root():
        import pwd
        pw = pwd.getpwnam("nobody")
        for dirpath, dirnames, filenames in os.walk(path):
            for p in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
                try:
                    os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
                except FileNotFoundError:
                    pass  # a temporary file of someone else's came and went


def split_mbox(data):
    """The messages of an mbox file as the contract defines them (bytes each,
    as stored, without From_ line and separator)."""
    lines = data.splitlines(keepends=True)
    starts = []
    for i, line in enumerate(lines):
        if line.startswith(b"From ") and (i == 0 or lines[i - 1] in (b"\n", b"\r\n")):
            starts.append(i)
    msgs = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else len(lines)
        body = lines[s + 1:e]
        if k + 1 < len(starts) or (body and body[-1] in (b"\n", b"\r\n")):
            if body and body[-1] in (b"\n", b"\r\n"):
                body = body[:-1]  # the separator, or the one empty line ending the file
        msgs.append(b"".join(body))
    return msgs


def wire_form(msg):
    """What RETR delivers before byte-stuffing: CRLF line ends, CRLF added at the end."""
    out = []
    for line in msg.splitlines(keepends=True):
        if line.endswith(b"\r\n"):
            out.append(line)
        elif line.endswith(b"\n"):
            out.append(line[:-1] + b"\r\n")
        else:
            out.append(line + b"\r\n")
    return b"".join(out)


def unstuff(lines):
    return b"".join(l[1:] if l.startswith(b".") else l for l in lines)


def message(rng, n, size=None):
    """A plausible message with dot lines and quoted From lines."""
    size = size or rng.randint(200, 6000)
    if size > 100_000:  # a big base64-like attachment, made quickly
        line = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                       for _ in range(76))
        lines = [line[i % 76:] + line[:i % 76] for i in range(size // 77)]
        return (f"From: big{n}@example.org\nSubject: attachment {n} {rng.random()}\n"
                f"Content-Transfer-Encoding: base64\n\n" + "\n".join(lines) + "\n").encode()
    hdr = (f"From: sender{n}@example.org\nTo: alice@example.net\n"
           f"Subject: message {n}\nMessage-ID: <{n}.{rng.random()}@example.org>\n\n")
    body = []
    total = 0
    while total < size:
        kind = rng.random()
        if kind < 0.05:
            line = "." + "x" * rng.randint(0, 40)
        elif kind < 0.08:
            line = ">From someone quoted"
        elif kind < 0.10:
            line = ""
        else:
            line = " ".join(rng.choice(["lorem", "ipsum", "dolor", "sit", "amet", "mail"])
                            for _ in range(rng.randint(1, 14)))
        body.append(line)
        total += len(line) + 1
    return (hdr + "\n".join(body) + "\n").encode()


# ---- the store: an mbox file, or a Maildir ----

# The store the client tests serve: "mbox", or "maildir" (set by the
# client_*_maildir.sh variants: the same test on a Maildir holding the same
# messages).
STORE = os.environ.get("POP3D_TEST_STORE", "mbox")


def mailbox_template(d):
    """pop3d's --mailbox for the users' maildrops in directory D."""
    return os.path.join(d, "%u/" if STORE == "maildir" else "%u.mbox")


def is_maildir(path):
    return path.endswith("/")


def maildir_vsize(msg):
    """A message's octets with CRLF line ends (every LF not after a CR
    counted as CR LF): the ,W= size Dovecot and Courier write into a name."""
    return len(msg) + msg.count(b"\n") - msg.count(b"\r\n")


def _maildir_order(name):
    """Where a message named NAME comes in delivery order, as Dovecot gives
    UIDs: the leading stamp, the microseconds (the digits after the first 'M'
    of the part after the stamp: Dovecot's "1733590000.M123456P789.host",
    Postfix's "1733590000.V803I1a2bM123456.host"; 0 when none), the name up
    to ':'."""
    import re
    m = re.match(r"([0-9]*)(?:\.([^.:]*))?", name)
    usecs = re.search(r"M([0-9]*)", m.group(2) or "")
    return (int(m.group(1) or 0), int(usecs.group(1) or 0) if usecs else 0,
            name.split(":", 1)[0])


def _maildir_files(path):
    """(order, name, sub) of each message file of a Maildir, in delivery order."""
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if not name.startswith("."):
                out.append((_maildir_order(name), name, sub))
    return sorted(out)


def maildir_add(path, msgs):
    """Deliver MSGS into the Maildir PATH (made if missing), later than what
    it holds, in order, as the MDAs and IMAP servers name them: "<stamp>.<n>
    .pop3d-test", every third name with ",S=<octets>,W=<CRLF octets>" (what
    Dovecot writes), every second file in cur/ with ":2,S" (seen, as an IMAP
    client leaves it), the others in new/. The first 20 stamps have 9 digits,
    the next ones 10: the order is right only if compared as numbers."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    have = _maildir_files(path)
    stamp = have[-1][0][0] + 1 if have else 999_999_900
    for i, m in enumerate(msgs, len(have)):
        base = f"{stamp + 5 * (i - len(have))}.{i}.pop3d-test"
        if i % 3 == 1:
            base += f",S={len(m)},W={maildir_vsize(m)}"
        name = f"cur/{base}:2,S" if i % 2 == 1 else f"new/{base}"
        with open(os.path.join(path, "tmp", base), "wb") as f:
            f.write(m)
        os.rename(os.path.join(path, "tmp", base), os.path.join(path, name))


def maildir_contents(path):
    """{"new/NAME" or "cur/NAME": octets} of every message file of a Maildir."""
    out = {}
    for _, name, sub in _maildir_files(path):
        with open(os.path.join(path, sub, name), "rb") as f:
            out[f"{sub}/{name}"] = f.read()
    return out


def maildir_messages_in_order(path):
    """The messages of a Maildir in the order a POP3 server lists them."""
    c = maildir_contents(path)
    return [c[f"{sub}/{name}"] for _, name, sub in _maildir_files(path)]


def maildir_uidls(path):
    """What a Maildir's UIDLs are, in order: the names up to the first ':'."""
    return [name.split(":", 1)[0] for _, name, _ in _maildir_files(path)]


def mbox_of(msgs, sender="someone@example.org"):
    return b"".join(b"From " + sender.encode() + b" Mon Nov  2 09:14:07 2026\n" + m + b"\n"
                    for m in msgs)


class Pop3Pipe:
    """./pop3d on pipes, one response at a time."""

    def __init__(self, mailbox_template, extra=(), env=None, binary=None):
        home = os.path.dirname(mailbox_template.rstrip("/"))   # "D/%u/": a Maildir in D
        give_to_server(home)
        self.log = os.path.join(home, "pop3d.log")
        self.p = subprocess.Popen(
            [binary or POP3D, "--passwd", PASSWD, "--mailbox", mailbox_template, "--log", self.log,
             "--login-delay", "0", *root_args(),
             *([] if "--state-dir" in extra else state_args()), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        client_of(self.p.pid)   # before any handoff
        self.greeting = self.line()

    def line(self):
        l = self.p.stdout.readline()
        if not l.endswith(b"\r\n"):
            raise AssertionError(f"response line without CRLF: {l!r}")
        return l

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.line()

    def multi(self, text):
        first = self.cmd(text)
        if not first.startswith(b"+OK"):
            return first, []
        lines = []
        while True:
            l = self.line()
            if l == b".\r\n":
                return first, lines
            lines.append(l)

    def close(self):
        self.p.stdin.close()
        rest = self.p.stdout.read()
        return self.p.wait(timeout=30), rest


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


# ---- the process model, seen from /proc ----

def proc_status(pid):
    """/proc/PID/status as a dict of lists of fields."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def descendants(pid):
    """Every live process below pid."""
    children = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            children.setdefault(parent_of(int(p)), []).append(int(p))
        except (OSError, ValueError, IndexError):
            pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def deepest(pids):
    """Of processes sharing a connection, the one the others are ancestors of:
    the one that reads the client (the greeter before login, the session
    process after it)."""
    pids = set(pids)

    def depth(p):
        n = 0
        while p > 1:
            try:
                p = parent_of(p)
            except OSError:
                break
            n += p in pids
        return n
    return max(pids, key=depth)


def reader_of(pid, timeout=5.0):
    """The process below pid (a pop3d on pipes) that reads the client now."""
    deadline = time.monotonic() + timeout
    client = client_of(pid)
    while True:
        below = [p for p in descendants(pid) if _holds(p, client)]
        if below:
            return deepest(below + [pid])
        if time.monotonic() > deadline:
            raise AssertionError(f"no process below {pid} reads the client")
        time.sleep(0.02)


_clients = {}


def client_of(pid):
    """The client's end as pid's stdin was first seen: the authenticator
    replaces its own by /dev/null at the handoff (Pop3Pipe looks first)."""
    if pid not in _clients:
        try:
            _clients[pid] = os.readlink(f"/proc/{pid}/fd/0")
        except OSError:
            return None   # it has already ended
    return _clients[pid]


def _holds(p, client):
    try:
        return os.readlink(f"/proc/{p}/fd/0") == client
    except OSError:
        return False


def timed_login(cmd, user, password, source, give_up=None, live=None):
    """One pop3d (cmd) on pipes, its peer REMOTE_HOST=source as stunnel sets
    it: USER, PASS, QUIT. Returns (the PASS answer, seconds from PASS to it),
    or (b"", 0.0) when the session broke. give_up: seconds after which the
    client hangs up (the server goes with it). live: a (set, lock) that holds
    the process while it runs, for a caller that must kill what is left."""
    import threading
    env = dict(os.environ, REMOTE_HOST=source)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    timer = threading.Timer(give_up, p.kill) if give_up else None
    if timer:
        timer.start()
    if live:
        with live[1]:
            live[0].add(p)
    try:
        p.stdout.readline()
        p.stdin.write(f"USER {user}\r\n".encode())
        p.stdin.flush()
        p.stdout.readline()
        t0 = time.monotonic()
        p.stdin.write(f"PASS {password}\r\n".encode())
        p.stdin.flush()
        answer = p.stdout.readline()
        took = time.monotonic() - t0
        try:
            p.stdin.write(b"QUIT\r\n")
            p.stdin.close()
        except BrokenPipeError:
            pass
        p.wait(timeout=60)
        return answer, took
    except (OSError, ValueError):
        p.kill()
        p.wait()
        return b"", 0.0
    finally:
        if timer:
            timer.cancel()
        if live:
            with live[1]:
                live[0].discard(p)
