"""One virtual user's session cannot touch another's mail or processes, on
every kernel pop3d serves on (issue 19). As root, with the test build
(tests/pop3d-fault) and its XTEST probes:

- virtual users alice and bob share one uid (--user nobody) and one mailbox
  directory; bob's session stays open (its keeper and session process found
  in /proc) while alice's session process, taken over, tries each attack:
  open, stat, chmod, truncate, utimensat, chown, link, rename, unlink and
  setxattr on bob's mailbox; rt_sigqueueinfo, kill, pidfd_send_signal,
  prlimit, setpriority and F_SETOWN+F_SETSIG (SIGKILL on the next client
  line) against bob's keeper and session process; and, before bob logs in,
  binding bob's abstract session-lock name (--lock ...,flock), which would
  lock bob out. Each must be refused (-ERR) or stop alice's session process
  (a logged sandbox violation). Afterwards bob's mailbox is byte-identical
  with the same mode, owner, link count, mtime, ctime and no xattr, no new
  name is in the directory, and bob's session still serves, deletes and
  commits at QUIT;
- all of it on this kernel's Landlock, on Landlock ABI 2 (Debian 12's 6.1
  kernel: no LANDLOCK_ACCESS_FS_TRUNCATE) and with no Landlock at all,
  emulated by tests/landlock-shim.so (LD_PRELOAD; pop3d runs as root, not
  setuid, so the loader honours it);
- with no Landlock and --user, the login is refused ([SYS/TEMP]) with one
  log line naming Landlock and --sandbox=no-landlock; with that option the
  attacks above must fail on seccomp alone. --sandbox=strict still refuses.
"""
import os
import select
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

if not P.as_root():
    print("skipped: needs root (virtual users sharing one uid with --user)")
    sys.exit(77)

FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")
SHIM = os.path.join(P.ROOT, "tests", "landlock-shim.so")
if not os.path.exists(SHIM):
    subprocess.run(["make", "-C", P.ROOT, "--no-print-directory", "tests/landlock-shim.so"],
                   check=True, stdout=subprocess.DEVNULL)
top = P.tmpdir("security-isolation")
shutil.rmtree(top)
d = os.path.join(top, "mail")
log = os.path.join(top, "pop3d.log")
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    demo = f.read()
alice_box, bob_box = os.path.join(d, "alice.mbox"), os.path.join(d, "bob.mbox")
PASSWORDS = {"alice": "secret", "bob": "correct horse"}   # tests/scripts/passwd
failures = []


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what)
    if not cond:
        failures.append(what)


def fresh_mailboxes():
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for path in (alice_box, bob_box):
        with open(path, "wb") as f:
            f.write(demo)
    P.give_to_server(d)


def snapshot(path):
    """Everything an attack could change about bob's mailbox."""
    st = os.lstat(path)
    with open(path, "rb") as f:
        data = f.read()
    return (data, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_mtime_ns, st.st_ctime_ns,
            os.listxattr(path), sorted(os.listdir(d)))


def log_text(start):
    if not os.path.exists(log):
        return ""
    with open(log) as f:
        f.seek(start)
        return f.read()


def log_size():
    return os.path.getsize(log) if os.path.exists(log) else 0


class Session:
    """A pop3d-fault on pipes, one line at a time; b"" once it has gone."""

    def __init__(self, user, env, extra):
        self.p = subprocess.Popen(
            [FAULT, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"), "--log", log,
             "--login-delay", "0", *P.root_args(), *P.state_args(), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        P.client_of(self.p.pid)   # before the handoff: the authenticator lets go of it then
        self.line()
        self.cmd(f"USER {user}")
        self.login = self.cmd("PASS " + PASSWORDS[user])

    def line(self):
        return self.p.stdout.readline()

    def cmd(self, text):
        try:
            self.p.stdin.write(text.encode() + b"\r\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            return b""
        return self.line()

    def close(self):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        rest = self.p.stdout.read()
        return self.p.wait(timeout=30), rest


def process_state(pid):
    """What an attack on a process could change: its limits and nice value."""
    with open(f"/proc/{pid}/limits") as f:
        limits = f.read()
    with open(f"/proc/{pid}/stat") as f:
        nice = f.read().rsplit(")", 1)[1].split()[16]
    return limits, nice


def exited(pidfd):
    """A pidfd polls readable once its process has exited (a zombie too)."""
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    return bool(p.poll(0))


def session_lock_name(path):
    st = os.stat(path)
    return f"pop3d-session-{st.st_dev}-{st.st_ino}"


def attack(env, extra, probe, arg, what):
    """alice's session process tries one attack: it must be refused or stopped."""
    start = log_size()
    a = Session("alice", env, extra)
    if not a.login.startswith(b"+OK alice has"):
        check(False, f"{what}: alice logs in ({a.login!r})")
        a.close()
        return
    answer = a.cmd(f"XTEST {probe} {arg}".rstrip())
    after = a.cmd("NOOP")   # the next client line: F_SETOWN's SIGIO would fire now
    a.cmd("QUIT")
    a.close()
    text = log_text(start)
    stopped = answer == b"" and "sandbox violation: the session process" in text
    check(answer.startswith(b"-ERR") or stopped,
          f"{what}: {'stopped (sandbox violation)' if stopped else answer.decode().strip()!r}")
    if answer.startswith(b"-ERR"):
        check(after.startswith(b"+OK"), f"{what}: alice's own session goes on")


class Bob:
    """bob's session, open while alice attacks: its keeper and session process."""

    def __init__(self, name, env, extra, first=None):
        self.name = name
        self.s = first or Session("bob", env, extra)
        self.env, self.extra = env, extra
        self.ok = self.s.login.startswith(b"+OK bob has 3")
        if self.ok:
            self.session = P.reader_of(self.s.p.pid)
            self.keeper = P.parent_of(self.session)
            self.before = snapshot(bob_box)
            self.pids = (self.keeper, self.session)
            self.pidfds = [os.pidfd_open(pid) for pid in self.pids]
            self.procs = [process_state(pid) for pid in self.pids]

    def intact(self, what):
        """Everything as before the attack; else say so, and start over for the next."""
        same = snapshot(bob_box) == self.before
        check(same, f"{what}: bob's mailbox untouched (octets, mode, owner, links, times, "
              "xattrs, names)")
        # A round trip through bob's session first: a signal sent meanwhile has landed.
        noop = self.s.cmd("NOOP")
        live = noop.startswith(b"+OK") and not any(exited(fd) for fd in self.pidfds)
        check(live, f"{what}: bob's keeper and session process live and serve")
        unchanged = live and [process_state(pid) for pid in self.pids] == self.procs
        check(not live or unchanged, f"{what}: bob's processes' limits and nice value unchanged")
        if same and live and unchanged:
            return self
        self.close()
        fresh_mailboxes()
        return Bob(self.name, self.env, self.extra)

    def close(self):
        for fd in getattr(self, "pidfds", ()):
            os.close(fd)
        self.s.p.kill()
        return self.s.close()


def attacks(name, env, extra):
    extra = ["--lock", "dotlock,fcntl,flock", *extra]
    fresh_mailboxes()
    # Before bob logs in: his session-lock name, taken from alice's session process.
    a = Session("alice", env, extra)
    probe = a.cmd("XTEST LANDLOCK")
    check(a.login.startswith(b"+OK alice has"), f"{name}: alice logs in ({a.login!r})")
    want = {None: b"+OK done ", "2": b"+OK done 2\r", "0": b"-ERR ENOSYS"}[env.get("POP3D_LANDLOCK_ABI")]
    check(probe.startswith(want),
          f"{name}: the session process sees the Landlock it should ({probe!r})")
    start = log_size()
    bind = a.cmd(f"XTEST BIND {session_lock_name(bob_box)}")
    stopped = bind == b"" and "sandbox violation: the session process" in log_text(start)
    check(bind.startswith(b"-ERR") or stopped,
          f"{name}: bind bob's abstract session-lock name: "
          f"{'stopped' if stopped else bind.decode().strip()!r}")
    bob = Bob(name, env, extra)
    check(bob.ok, f"{name}: bob still logs in ({bob.s.login!r})")
    a.cmd("QUIT")
    a.close()
    if not bob.ok:   # locked out: the other attacks all the same
        bob.close()
        bob = Bob(name, env, extra)
        if not bob.ok:
            bob.close()
            return
    check(P.parent_of(bob.keeper) == bob.s.p.pid,
          f"{name}: bob's keeper {bob.keeper}, session process {bob.session}")
    for probe in ("OPEN", "STAT", "CHMOD", "TRUNCATE", "UTIME", "CHOWN", "LINK", "RENAME",
                  "UNLINK", "SETXATTR"):
        what = f"{name}: {probe.lower()} bob's mailbox"
        attack(env, extra, probe, bob_box, what)
        bob = bob.intact(what)
    for whose in ("keeper", "session process"):
        for probe in ("SIGNAL", "KILL", "PIDFD", "PRLIMIT", "NICE", "SETOWN"):
            what = f"{name}: {probe.lower()} bob's {whose}"
            attack(env, extra, probe, str(getattr(bob, whose.split()[0])), what)
            bob = bob.intact(what)
    stat = bob.s.cmd("STAT")
    retr = bob.s.cmd("RETR 1")
    while retr and retr != b".\r\n":
        retr = bob.s.line()
    dele = bob.s.cmd("DELE 1")
    quit_ = bob.s.cmd("QUIT")
    rc, _ = bob.s.close()
    bob.close()
    check(stat.startswith(b"+OK 3 ") and retr == b".\r\n" and dele.startswith(b"+OK") and
          b"signing off" in quit_ and rc == 0,
          f"{name}: bob's session serves, deletes and commits (exit {rc}, {quit_!r})")
    with open(bob_box, "rb") as f:
        check(len(P.split_mbox(f.read())) == 2, f"{name}: bob's deletion applied")


def refused(name, env, extra, want_option):
    fresh_mailboxes()
    start = log_size()
    a = Session("alice", env, extra)
    a.cmd("QUIT")
    a.close()
    text = log_text(start)
    lines = [l for l in text.splitlines() if "Landlock" in l]
    check(a.login.startswith(b"-ERR [SYS/TEMP]"), f"{name}: the login is refused ({a.login!r})")
    check(len(lines) == 1 and (not want_option or "--sandbox=no-landlock" in lines[0]),
          f"{name}: one log line names Landlock{' and --sandbox=no-landlock' if want_option else ''} "
          f"({lines})")
    check("login: user=alice" not in text and snapshot(alice_box)[0] == demo,
          f"{name}: nobody served, nothing touched")


native = dict(os.environ)
abi2 = dict(os.environ, LD_PRELOAD=SHIM, POP3D_LANDLOCK_ABI="2")
none = dict(os.environ, LD_PRELOAD=SHIM, POP3D_LANDLOCK_ABI="0")

attacks("this kernel's Landlock", native, [])
attacks("Landlock ABI 2", abi2, [])
refused("no Landlock, --user", none, [], True)
refused("no Landlock, --sandbox=strict", none, ["--sandbox=strict"], False)
attacks("no Landlock, --sandbox=no-landlock", none, ["--sandbox=no-landlock"])

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
