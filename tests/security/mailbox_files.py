"""Mailbox, lock and journal files are never followed through a symlink, and
only a regular file owned by the serving user is served as a mailbox.

A user who can create files next to a mailbox (a shared spool directory)
may plant: a symlink, a FIFO, a device or a directory as the mailbox; a
mailbox of their own in another user's name; a symlink as the dotlock, the
update journal or its temporary file. Each is refused or ignored without
being followed (a stale symlink dotlock is removed: it holds no mail), and
the files the symlinks point at are never touched.
"""
import os
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

top = P.tmpdir("security-mailbox-files")
subprocess.run(["rm", "-rf", top], check=True)
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    DEMO = f.read()
checked = []


def fresh(name):
    """An empty served directory, and a victim file outside it that no one may change."""
    d = os.path.join(top, name)
    os.makedirs(d)
    victim = os.path.join(top, name + ".victim")
    with open(victim, "wb") as f:
        f.write(b"precious, not a mailbox\n")
    if P.as_root():   # the served user could write it: following a link would show
        import pwd
        os.chown(victim, pwd.getpwnam("nobody").pw_uid, -1)
    os.chmod(victim, 0o600)
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    return d, os.path.join(d, "alice.mbox"), victim


def victim_intact(victim):
    with open(victim, "rb") as f:
        assert f.read() == b"precious, not a mailbox\n", f"{victim} was written"
    assert os.stat(victim).st_mtime == 1_000_000_000, f"{victim} was touched"


def login(d, commands=("QUIT",), prepare=None):
    """USER/PASS (its answer returned), then commands; the session must end normally.
    prepare() runs once the server is started (Pop3Pipe gives the directory to
    the served user first)."""
    started = time.time()
    s = P.Pop3Pipe(os.path.join(d, "%u.mbox"))
    if prepare:
        prepare()
    assert s.cmd("USER alice").startswith(b"+OK")
    answer = s.cmd("PASS secret")
    replies = [s.cmd(c) for c in commands]
    rc, _ = s.close()
    assert time.time() - started < 20, "the login hung"
    return answer, replies, rc


def refused(name, make, prefix, prepare=None):
    d, box, victim = fresh(name)
    make(box, victim)
    answer, _, rc = login(d, prepare=prepare and (lambda: prepare(box)))
    assert answer.startswith(prefix), f"{name}: {answer!r}"
    assert rc == 0, f"{name}: exit status {rc}"
    victim_intact(victim)
    checked.append(name)
    return d, box


def plant_symlink(box, victim):
    os.symlink(victim, box)


def plant_dangling(box, victim):
    os.symlink(os.path.join(os.path.dirname(victim), "no-such-file"), box)


# ---- what is not a regular file of the user's ----
refused("symlink", plant_symlink, b"-ERR [SYS/PERM] mailbox is a symbolic link")
refused("dangling-symlink", plant_dangling, b"-ERR [SYS/PERM] mailbox is a symbolic link")
refused("fifo", lambda box, v: os.mkfifo(box), b"-ERR [SYS/PERM] mailbox is not a regular file")
refused("directory", lambda box, v: os.mkdir(box), b"-ERR [SYS/PERM]")
if P.as_root():
    # /dev/null's numbers; on a nodev mount the open fails instead: refused as well.
    refused("device", lambda box, v: os.mknod(box, stat.S_IFCHR | 0o666, os.makedev(1, 3)),
            b"-ERR [SYS/PERM]")

    def foreign(box, victim):
        with open(box, "wb") as f:
            f.write(DEMO)

    def give_away(box):   # planted by another user, readable and writable by all
        os.chown(box, 1, 1)
        os.chmod(box, 0o666)

    d, box = refused("foreign-owner", foreign, b"-ERR [SYS/PERM] mailbox is not owned by",
                     prepare=give_away)
    with open(box, "rb") as f:
        assert f.read() == DEMO, "the foreign mailbox changed"
else:
    print("skipped as non-root: device node, mailbox owned by another user")


def served_mailbox(name):
    d, box, victim = fresh(name)
    with open(box, "wb") as f:
        f.write(DEMO)
    return d, box, victim


def after_quit_with_deletion(d, box, victim, name):
    answer, replies, rc = login(d, ("DELE 1", "QUIT"))
    assert answer.startswith(b"+OK"), f"{name}: {answer!r}"
    assert replies[-1].startswith(b"+OK"), f"{name}: {replies!r}"
    assert rc == 0, f"{name}: exit status {rc}"
    with open(box, "rb") as f:
        assert len(P.split_mbox(f.read())) == len(P.split_mbox(DEMO)) - 1, "DELE not applied"
    victim_intact(victim)
    checked.append(name)


# ---- a stale dotlock that is a symlink: removed, never followed ----
d, box, victim = served_mailbox("dotlock-symlink")
os.symlink(victim, box + ".lock")
old = time.time() - 3600
os.utime(box + ".lock", (old, old), follow_symlinks=False)
after_quit_with_deletion(d, box, victim, "dotlock-symlink")
assert not os.path.lexists(box + ".lock"), "the planted dotlock is still there"

# ---- the update journal's temporary file as a symlink: never followed nor removed ----
d, box, victim = served_mailbox("journal-temp-symlink")
os.symlink(victim, box + ".pop3d-journal.new")
after_quit_with_deletion(d, box, victim, "journal-temp-symlink")
assert os.path.islink(box + ".pop3d-journal.new"), "a file pop3d did not make was removed"

# ---- the update journal as a symlink: not followed, no journal, the login goes on ----
d, box, victim = served_mailbox("journal-symlink")
os.symlink(victim, box + ".pop3d-journal")
answer, _, rc = login(d)
assert answer.startswith(b"+OK"), answer
with open(box, "rb") as f:
    assert f.read() == DEMO, "the mailbox changed"
victim_intact(victim)
assert os.path.islink(box + ".pop3d-journal"), "a file pop3d did not make was removed"
checked.append("journal-symlink")
# ---- a journal planted by another user: neither trusted nor removed, blocks nothing ----
if P.as_root():
    d, box, victim = served_mailbox("journal-foreign")
    journal = box + ".pop3d-journal"
    planted = b"POP3DJNL" + bytes(200)

    def plant_journal():   # after Pop3Pipe gave the directory to the served user
        with open(journal, "wb") as f:
            f.write(planted)
        os.chown(journal, 1, 1)
        os.chmod(journal, 0o666)

    answer, _, rc = login(d, prepare=plant_journal)
    assert answer.startswith(b"+OK"), answer
    with open(box, "rb") as f:
        assert f.read() == DEMO, "the mailbox changed"
    with open(journal, "rb") as f:
        assert f.read() == planted, "the planted journal was changed"
    checked.append("journal-foreign")

print("ok: refused or removed without following:", ", ".join(checked))
