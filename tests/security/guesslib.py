"""Helpers for the guessing attacks (issue 18): a pop3d configuration of its
own per scenario (virtual users, state dir, log), a pipe-session client that
cannot hang (every read has a deadline), PROXY v1/v2 headers, parallel
guessers, and the process census from /proc.

Used by tests/security/guessing.py (short constants) and
tests/stress/guessing.py (the shipped defaults)."""
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pop3lib as P  # noqa: E402

# The accounts every scenario's passwd file holds: alice the victim, mallory
# the attacker's own account, the others bystanders.
PASSWORDS = {
    "alice": "alice's secret",
    "bob": "correct horse",
    "carol": "carol's secret",
    "dave": "dave's secret",
    "frank": "frank's secret",
    "mallory": "mallory's own",
}

_hashes = {}


def hashed(password):
    """A hash from pop3d --hash (what an administrator would put in the file)."""
    if password not in _hashes:
        out = subprocess.run([P.POP3D, "--hash"], input=password.encode() + b"\n",
                             stdout=subprocess.PIPE, check=True, timeout=30).stdout
        _hashes[password] = out.decode().strip()
    return _hashes[password]


# ---- PROXY headers ----

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src, dst="10.0.0.1", sport=40000, dport=110):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v2(src, dst, sport=40000, dport=110):
    """A v2 PROXY header (command PROXY, TCP over the family of src)."""
    if ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) +
                struct.pack(">HH", sport, dport))
        fam = 0x21
    else:
        body = (socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst) +
                struct.pack(">HH", sport, dport))
        fam = 0x11
    return V2_SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


# ---- throttle options ----

def throttle_args(account=None, known=None, source=None):
    args = []
    for name, value in (("account", account), ("known", known), ("source", source)):
        if value is not None:
            args += [f"--throttle-{name}", value]
    return args


def bound(bucket, seconds):
    """Most failed checks a bucket "N/SECS" lets through in `seconds`: N +
    seconds/SECS, plus one for slack."""
    n, secs = (int(x) for x in bucket.split("/"))
    return int(n + seconds / secs) + 1


# ---- one pop3d configuration ----

class Server:
    """The command line of one pop3d configuration, its files, and every
    session started with it. Its processes are found by the state directory's
    unique path in /proc/PID/cmdline (and a marker in the environment)."""

    def __init__(self, name, throttle=(), login_delay=0, extra=(), timeout=60, passwd_extra=None):
        """login_delay, timeout: None leaves pop3d's default. passwd_extra: a
        function writing more passwd lines to the open file."""
        self.name = name
        self.dir = P.tmpdir(f"guessing-{name}")   # its mail/ goes to --user
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "mail"))
        # Not under the mail directory: that one goes to the server's --user.
        self.state = os.path.join(P.tmpdir("guessing"), f"state-{name}-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.state)
        self.log = os.path.join(self.dir, "mail", "pop3d.log")
        self.passwd = os.path.join(self.dir, "passwd")
        self.stderr = os.path.join(self.dir, "stderr")
        with open(self.passwd, "w") as f:
            for user, password in PASSWORDS.items():
                f.write(f"{user}:{hashed(password)}\n")
            if passwd_extra:
                passwd_extra(f)
        for user in PASSWORDS:
            open(os.path.join(self.dir, "mail", f"{user}.mbox"), "wb").close()
        P.give_to_server(os.path.join(self.dir, "mail"))
        self.marker = f"GUESSING_TEST_{uuid.uuid4().hex}"
        self.args = [P.POP3D, "--passwd", self.passwd,
                     "--mailbox", os.path.join(self.dir, "mail", "%u.mbox"),
                     "--log", self.log, "--state-dir", self.state,
                     *([] if login_delay is None else ["--login-delay", str(login_delay)]),
                     *([] if timeout is None else ["--timeout", str(timeout)]),
                     *P.root_args(), *throttle, *extra]
        self.lock = threading.Lock()
        self.live = set()        # Popen objects of sessions still running
        self.abandoned = []      # Popen objects whose client hung up (reaped later)
        self.sessions = 0

    # -- sessions --

    def start(self, source, var="REMOTE_HOST"):
        env = dict(os.environ)
        for v in ("REMOTE_HOST", "REMOTE_ADDR", "TCPREMOTEIP", "SOCAT_PEERADDR"):
            env.pop(v, None)
        env[var] = source
        env["GUESSING_MARKER"] = self.marker
        with open(self.stderr, "ab") as err:
            p = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=err, env=env, bufsize=0)
        with self.lock:
            self.live.add(p)
            self.sessions += 1
        return p

    def login(self, user, password, source, header=b"", var="REMOTE_HOST", wait=30.0):
        """One session: [PROXY header], USER, PASS, QUIT. Returns (the PASS
        answer, seconds from PASS to it); (b"", seconds) when the session
        broke or no answer came within `wait` s."""
        p = self.start(source, var)
        c = Client(p)
        t0 = time.monotonic()
        answer = b""
        try:
            if header:
                c.send(header)
            if not c.line(wait).startswith(b"+OK"):
                return b"", 0.0
            c.send(f"USER {user}\r\n".encode())
            c.line(wait)
            t0 = time.monotonic()
            c.send(f"PASS {password}\r\n".encode())
            answer = c.line(wait)
            took = time.monotonic() - t0
            c.send(b"QUIT\r\n")
            return answer, took
        except OSError:
            return answer, time.monotonic() - t0
        finally:
            self.finish(p)

    def hang_up_after_pass(self, user, password, source, after=1.0, header=b""):
        """A fire-and-forget guess: USER, PASS, and `after` seconds later the
        client closes its end (the server is not killed: it must notice)."""
        p = self.start(source)
        c = Client(p)
        try:
            if header:
                c.send(header)
            c.line(10)
            c.send(f"USER {user}\r\n".encode())
            c.line(10)
            c.send(f"PASS {password}\r\n".encode())
            time.sleep(after)
        except OSError:
            pass
        self.abandon(p)

    def abandon(self, p):
        for f in (p.stdin, p.stdout):
            try:
                f.close()
            except OSError:
                pass
        with self.lock:
            self.live.discard(p)
            self.abandoned.append(p)

    def finish(self, p, wait=30.0):
        """Close our end and reap the session (killed if it does not end)."""
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        try:
            p.stdout.close()
        except OSError:
            pass
        with self.lock:
            self.live.discard(p)

    def reap(self):
        """Collect abandoned sessions that ended (their zombies)."""
        with self.lock:
            keep = [p for p in self.abandoned if p.poll() is None]
            self.abandoned = keep

    # -- processes --

    def processes(self):
        """Live pop3d processes of this configuration (zombies excluded)."""
        found = []
        key = self.state.encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    mine = key in f.read()
                if not mine:
                    try:
                        with open(f"/proc/{pid}/environ", "rb") as f:
                            mine = self.marker.encode() in f.read()
                    except OSError:
                        pass
                if mine:
                    found.append(int(pid))
            except (OSError, IndexError):
                pass
        return found

    def wait_no_processes(self, timeout):
        """Seconds until none of this configuration's processes is alive, or None."""
        t0 = time.monotonic()
        while True:
            self.reap()
            if not self.processes():
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                return None
            time.sleep(0.05)

    def cleanup(self):
        """Kill what is left of this configuration's sessions (by pid: ours)."""
        with self.lock:
            procs = list(self.live) + self.abandoned
        for p in procs:
            try:
                p.kill()
            except OSError:
                pass
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        with self.lock:
            self.live.clear()
            self.abandoned = []

    # -- the log --

    def log_lines(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def count(self, needle):
        return sum(1 for line in self.log_lines() if needle in line)

    def count_re(self, pattern):
        r = re.compile(pattern)
        return sum(1 for line in self.log_lines() if r.search(line))

    def tail(self, n=25):
        text = "\n".join(self.log_lines()[-n:])
        try:
            with open(self.stderr, errors="replace") as f:
                err = f.read().splitlines()
        except FileNotFoundError:
            err = []
        if err:  # a usage error says more than an empty log
            first = [l for l in err if l.startswith("pop3d")][:3] or err[:3]
            text += "\n-- stderr:\n" + "\n".join(first)
        return text


class Client:
    """The client end of a pipe session; every read has a deadline."""

    def __init__(self, p):
        self.p = p
        self.buf = b""

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def line(self, wait):
        deadline = time.monotonic() + wait
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError("no answer in time")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError("the server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


# ---- running attacks ----

def parallel(n, seconds, body):
    """n threads calling body(thread, i) (i counts calls across threads) for
    `seconds`; returns (calls, seconds from start until every thread ended)."""
    stop = time.monotonic() + seconds
    counter = [0]
    lock = threading.Lock()

    def run(k):
        while time.monotonic() < stop:
            with lock:
                i = counter[0]
                counter[0] += 1
            body(k, i)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    return threads, counter, t0


def join(threads, t0, timeout=90):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    return time.monotonic() - t0, not any(t.is_alive() for t in threads)


WAIT_RE = re.compile(rb"try again in (\d+) seconds?")


def named_wait(answer):
    m = WAIT_RE.search(answer)
    return int(m.group(1)) if m else None


def kind(answer):
    """+OK, AUTH, LOGIN-DELAY, or the raw answer."""
    if answer.startswith(b"+OK"):
        return "+OK"
    if answer.startswith(b"-ERR [AUTH]"):
        return "AUTH"
    if answer.startswith(b"-ERR [LOGIN-DELAY]"):
        return "LOGIN-DELAY"
    return answer.decode(errors="replace").strip() or "(no answer)"
