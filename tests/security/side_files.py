"""No user name, hard link or planted file can make pop3d take one mailbox
for another's side file, delete it, serve it twice, or block a login.

As root, with virtual users served under --user (one uid for all), template
DIR/%u as /var/mail/%u:

- users named alice.lock, alice.pop3d-journal and alice.pop3d-journal.new are
  refused at login (-ERR [SYS/PERM], logged), and alice's logins never
  remove their mailboxes (once taken for a stale dotlock, an incomplete
  journal, and unlinked without a log line by recovery);
- a mailbox with a second name (a hard link to another's) is refused with
  -ERR [SYS/PERM] and a log line saying what was found and expected;
- in a 1777 --journal-dir (as the Debian package made it), files planted by
  another account (nobody) under alice's journal names, flat and per-account,
  neither block alice's login nor her update; nothing planted is deleted;
- a journal left in the flat layout of an older version by an interrupted
  update is recovered at the next login (no mail lost).
"""
import os
import re
import pwd
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

if not P.as_root():
    print("skipped: needs root (virtual users under --user, files of two accounts)")
    sys.exit(77)

HASH = "$5$alicesalt$253S664qOSUqLg/EE6Y0v3qyl4ZXt6nKjXbvqFPamx5"  # "secret"
SERVED = pwd.getpwnam("daemon")    # the --user account: owns every virtual mailbox
PLANTER = pwd.getpwnam("nobody")   # another local account
FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    DEMO = f.read()
DEMO_MSGS = P.split_mbox(DEMO)
COLLIDERS = ["alice.lock", "alice.pop3d-journal", "alice.pop3d-journal.new"]
USERS = ["alice", "bob", "mallory"] + COLLIDERS

top = P.tmpdir("security-side-files")
subprocess.run(["rm", "-rf", top], check=True)
os.makedirs(top, mode=0o755)
passwd = os.path.join(top, "passwd")
with open(passwd, "w") as f:
    f.writelines(f"{u}:{HASH}\n" for u in USERS)
checked = []


def served_dir(name):
    d = os.path.join(top, name)
    os.makedirs(d)
    os.chown(d, SERVED.pw_uid, SERVED.pw_gid)
    return d


def put(path, data, owner=SERVED, age=None):
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, 0o600)
    if age:
        t = time.time() - age
        os.utime(path, (t, t))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def mail_of(user):
    return P.mbox_of([f"Subject: {user}'s only copy\n\nkeep me\n".encode()], sender=user)


class Session:
    def __init__(self, d, extra=(), env=None, binary=None):
        self.log = os.path.join(top, "pop3d.log")
        self.p = subprocess.Popen(
            [binary or P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(d, "%u"),
             "--user", SERVED.pw_name, "--log", self.log, "--login-delay", "0",
             *P.state_args(), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.line().startswith(b"+OK")

    def line(self):
        return self.p.stdout.readline()

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.line()

    def close(self):
        self.p.stdin.close()
        self.p.stdout.read()
        return self.p.wait(timeout=60)


def login(d, user, commands=(), extra=(), env=None, binary=None):
    """USER/PASS, then commands and QUIT: (PASS answer, answers, exit status)."""
    s = Session(d, extra, env, binary)
    assert s.cmd(f"USER {user}").startswith(b"+OK")
    answer = s.cmd("PASS secret")
    replies = [s.cmd(c) for c in commands] + [s.cmd("QUIT")]
    return answer, replies, s.close()


def log_text():
    try:
        return read(os.path.join(top, "pop3d.log")).decode(errors="replace")
    except FileNotFoundError:
        return ""


def dele_first(d, user="alice", extra=()):
    """alice deletes message 1 (a journaled move: the others are kept)."""
    answer, replies, rc = login(d, user, ["DELE 1"], extra)
    assert answer.startswith(b"+OK"), f"{user}: {answer!r}\n{log_text()}"
    assert replies[-1].startswith(b"+OK"), f"QUIT: {replies!r}\n{log_text()}"
    assert P.split_mbox(read(os.path.join(d, user))) == DEMO_MSGS[1:], "DELE not applied"


# ---- user names that collide with alice's side files ----
d = served_dir("collide")
alice = os.path.join(d, "alice")
put(alice, DEMO)
for name in COLLIDERS:
    # Delivered by the MTA, as to any local user; old enough for a stale dotlock.
    put(os.path.join(d, name), mail_of(name), age=3600)
for name in COLLIDERS:
    answer, _, rc = login(d, name)
    assert answer.startswith(b"-ERR [SYS/PERM]"), f"{name} was served: {answer!r}"
    assert "side file" in log_text(), f"{name}: no log line\n{log_text()}"
    assert read(os.path.join(d, name)) == mail_of(name), f"{name}'s login changed its mailbox"
checked.append("colliding names refused")

# alice's logins leave the three mailboxes alone. alice.lock sits where her
# dotlock goes: it is no lock, so it is never broken and her login waits it out.
started = time.time()
answer, _, _ = login(d, "alice")
assert answer.startswith(b"-ERR [SYS/TEMP]"), answer
assert time.time() - started < 60, "the lock wait is bounded"
assert "is not a lock" in log_text(), log_text()
for name in COLLIDERS:
    assert read(os.path.join(d, name)) == mail_of(name), f"alice's login removed {name}'s mail"
assert read(alice) == DEMO
checked.append("alice.lock kept")

# Without alice.lock in the way: alice logs in and updates; the other two stay.
lockbox = os.path.join(top, "alice.lock.aside")
os.rename(os.path.join(d, "alice.lock"), lockbox)
answer, replies, _ = login(d, "alice", ["DELE 1"])
assert answer.startswith(b"+OK"), f"alice blocked: {answer!r}\n{log_text()}"
for name in COLLIDERS[1:]:
    assert read(os.path.join(d, name)) == mail_of(name), f"alice's login removed {name}'s mail"
assert "is not a journal of pop3d's" in log_text(), log_text()
# Her journal's name is taken by someone's mailbox: the move is refused, nothing lost.
assert P.split_mbox(read(alice)) in (DEMO_MSGS, DEMO_MSGS[1:])
os.rename(lockbox, os.path.join(d, "alice.lock"))
checked.append("alice.pop3d-journal and .new kept")

# ---- a hard-linked mailbox is refused ----
d = served_dir("hardlink")
put(os.path.join(d, "bob"), DEMO)
os.link(os.path.join(d, "bob"), os.path.join(d, "mallory"))   # mallory's "mailbox" is bob's
for user in ("mallory", "bob"):
    answer, _, rc = login(d, user)
    assert answer.startswith(b"-ERR [SYS/PERM]"), f"{user}: {answer!r}"
    assert rc == 0
text = log_text()
assert re.search(r"found a regular file, mode 0\d\d\d, 2 links, owner uid \d+ \(", text) and \
    "expected a regular file, mode rw for its owner, 1 link" in text, text
assert read(os.path.join(d, "bob")) == DEMO
os.unlink(os.path.join(d, "mallory"))
dele_first(d, "bob")
checked.append("hard link refused")


# ---- a 1777 journal directory, files planted as nobody ----
def fnv(s):
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def flat_name(jdir, box):
    return os.path.join(jdir, f"{os.path.basename(box)}.{fnv(box):016x}.pop3d-journal")


def as_planter(fn):
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(PLANTER.pw_gid)
            os.setuid(PLANTER.pw_uid)
            fn()
            os._exit(0)
        except BaseException as e:   # noqa: BLE001 - report and fail
            print(f"planter: {e}", file=sys.stderr)
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert status == 0, "planting failed"


d = served_dir("journals")
alice = os.path.join(d, "alice")
put(alice, DEMO)
os.chmod(d, 0o755)   # the spool is not the users': journals go to --journal-dir
jdir = os.path.join(top, "pop3d-journal")
os.mkdir(jdir)
os.chmod(jdir, 0o1777)
jopt = ["--journal-dir", jdir]
own = os.path.join(jdir, str(SERVED.pw_uid))
flat = flat_name(jdir, alice)
flat_new = flat + ".new"


def plant():
    with open(flat, "w"):
        pass                    # touch alice's journal name (the attack of issue 19)
    with open(flat_new, "w") as f:
        f.write("x")
    os.symlink("/etc/passwd", own)   # the account's directory, as a symlink


as_planter(plant)
dele_first(d, extra=jopt)
st = os.lstat(own)
assert stat.S_ISDIR(st.st_mode) and st.st_uid == SERVED.pw_uid and stat.S_IMODE(st.st_mode) == 0o700, \
    f"{own}: {st}"
assert os.path.lexists(flat) and os.path.getsize(flat) == 0, "the planted journal was removed"
assert read(flat_new) == b"x", "the planted .new was removed"
aside = [n for n in os.listdir(jdir) if n.startswith(f"{SERVED.pw_uid}.planted.")]
assert aside and os.readlink(os.path.join(jdir, aside[0])) == "/etc/passwd", os.listdir(jdir)
assert "not a journal of uid" in log_text() and "moved aside" in log_text(), log_text()
checked.append("planted journals do not block")

# A directory of nobody's in place of the account's: moved aside too, never used.
os.rename(own, own + ".old")
as_planter(lambda: os.mkdir(own, 0o777))
put(alice, DEMO)
dele_first(d, extra=jopt)
st = os.lstat(own)
assert st.st_uid == SERVED.pw_uid and stat.S_IMODE(st.st_mode) == 0o700
checked.append("planted directory moved aside")

# ---- a journal of the flat layout (an older version) is recovered ----
if os.path.exists(FAULT):
    for name in os.listdir(own):
        os.unlink(os.path.join(own, name))
    for path in (flat, flat_new):
        os.unlink(path)
    journal = None
    for step in range(1, 60):
        put(alice, DEMO)
        env = dict(os.environ, POP3D_KILL_AT_STEP=str(step))
        answer, _, _ = login(d, "alice", ["DELE 1"], jopt, env=env, binary=FAULT)
        assert answer.startswith(b"+OK"), answer
        names = [n for n in os.listdir(own) if n.endswith(".pop3d-journal")]
        if names and read(os.path.join(own, names[0])).endswith(b"") and \
                b"P3DJEND" in read(os.path.join(own, names[0]))[-16:]:
            journal = os.path.join(own, names[0])
            break
        for n in os.listdir(own):
            os.unlink(os.path.join(own, n))
    assert journal, "no complete journal from a killed update"
    os.rename(journal, flat)   # where an older version left it
    answer, _, _ = login(d, "alice", ["STAT"], jopt)
    assert answer.startswith(b"+OK"), f"{answer!r}\n{log_text()}"
    assert P.split_mbox(read(alice)) == DEMO_MSGS[1:], "the interrupted update was not finished"
    assert not os.path.exists(flat) and not os.listdir(own), os.listdir(own)
    assert "older layout" in log_text(), log_text()
    checked.append("flat-layout journal recovered")
else:
    print("not checked: the flat-layout journal (tests/pop3d-fault not built)")

print("ok:", ", ".join(checked))
