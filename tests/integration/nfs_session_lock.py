"""Where flock(2) is emulated with fcntl locks (the Linux NFS client), the
session lock must not block delivery. tests/pop3d-nfslock is pop3d with lock.c
built as on NFS (POP3D_TEST_FLOCK_AS_FCNTL): its flock is a whole-file fcntl
lock, so a session lock taken with flock on the mailbox would hold every MDA
off until QUIT. Checked: the session lock is the file MAILBOX.pop3d-session
(in --journal-dir when given); an MDA's classic fcntl lock is granted at once
during a session; a second login is [IN-USE]; SIGKILL frees the lock; mail
delivered during the sessions is all there afterwards."""
import fcntl
import glob
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pop3lib as P

NFSLOCK = os.path.join(P.ROOT, "tests", "pop3d-nfslock")
if not os.access(NFSLOCK, os.X_OK):
    sys.exit(f"{NFSLOCK} is missing: make tests/pop3d-nfslock (make check builds it)")

rng = random.Random(6969)
d = P.tmpdir("nfs-session-lock")
for f in glob.glob(os.path.join(d, "*")):
    if os.path.isfile(f):
        os.unlink(f)
template = os.path.join(d, "%u.mbox")


def box_of(user):
    return os.path.join(d, user + ".mbox")


def deliver(box, msg, within=2.0):
    """As an MDA does (dotlock, then a classic fcntl lock, as procmail with
    Debian's locking): seconds it waited for the fcntl lock, or fail."""
    subprocess.run(["dotlockfile", "-l", "-r", "3", box + ".lock"], check=True)
    try:
        with open(box, "ab") as f:
            start = time.monotonic()
            while True:
                try:
                    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() - start > within:
                        raise AssertionError(f"the MDA's fcntl lock on {box} was refused for "
                                             f"{within} s during a session: delivery is blocked")
                    time.sleep(0.05)
            waited = time.monotonic() - start
            f.write(P.mbox_of([msg], sender="mda@example.org"))
            f.flush()
            fcntl.lockf(f, fcntl.LOCK_UN)
        return waited
    finally:
        subprocess.run(["dotlockfile", "-u", box + ".lock"], check=True)


def login(extra=()):
    s = P.Pop3Pipe(template, extra=extra, binary=NFSLOCK)
    assert s.cmd(f"USER {P.USER}").startswith(b"+OK")
    return s, s.cmd(f"PASS {P.PASSWORD}")


def kill_session(s):
    for pid in [s.p.pid] + P.descendants(s.p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    s.p.wait(timeout=10)


def check_lock_file(path):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a plain file"
    assert stat.S_IMODE(st.st_mode) == 0o600, f"{path} has mode {stat.S_IMODE(st.st_mode):o}"


def run_case(extra, lock_file_of):
    box = box_of(P.USER)
    original = [P.message(rng, i) for i in range(6)]
    with open(box, "wb") as f:
        f.write(P.mbox_of(original))
    delivered = []

    # A session that will be killed: the lock holds, delivery goes on, the kill frees it.
    s1, answer = login(extra)
    assert answer.startswith(b"+OK"), answer
    assert s1.cmd("DELE 1").startswith(b"+OK")
    for i in range(3):
        delivered.append(P.message(rng, 100 + len(delivered)))
        waited = deliver(box, delivered[-1])
        assert waited < 1.0, f"the MDA waited {waited:.2f} s for its fcntl lock"
    lockfile = lock_file_of()
    check_lock_file(lockfile)
    s2, answer = login(extra)
    assert answer.startswith(b"-ERR [IN-USE]"), f"second login during a session: {answer!r}"
    s2.close()
    kill_session(s1)

    # The next login gets the mailbox (the kernel freed the lock), sees the
    # mail delivered meanwhile and the killed session's DELE undone.
    deadline = time.monotonic() + 10
    while True:
        s3, answer = login(extra)
        if answer.startswith(b"+OK") or time.monotonic() > deadline:
            break
        s3.close()
        time.sleep(0.1)
    assert answer.startswith(b"+OK"), f"login after SIGKILL of the session: {answer!r}"
    first, listing = s3.multi("LIST")
    assert len(listing) == len(original) + len(delivered), listing
    assert s3.cmd("DELE 1").startswith(b"+OK")
    delivered.append(P.message(rng, 100 + len(delivered)))
    deliver(box, delivered[-1])
    assert s3.cmd("QUIT").startswith(b"+OK")
    rc, rest = s3.close()
    assert rc == 0, f"exit status {rc}"
    with open(box, "rb") as f:
        after = P.split_mbox(f.read())
    want = original[1:] + delivered
    assert after == want, f"after the session: {len(after)} messages, expected {len(want)}"
    assert os.path.exists(lockfile), "the session lock file was removed (it must stay)"
    return lockfile, len(delivered)


# Beside the mailbox.
lockfile, n = run_case((), lambda: box_of(P.USER) + ".pop3d-session")
print(f"ok: beside the mailbox ({os.path.basename(lockfile)}): {n} deliveries during "
      f"sessions, [IN-USE] for a second login, SIGKILL frees the lock, nothing lost")

# In --journal-dir, and then nothing beside the mailbox.
jdir = os.path.join(d, "journals")
os.makedirs(jdir, exist_ok=True)
os.unlink(lockfile)
P.give_to_server(d)


def in_journal_dir():
    # In the account's own directory JOURNAL_DIR/UID (pop3d makes it).
    found = glob.glob(os.path.join(jdir, "*", f"{P.USER}.mbox.*.pop3d-session"))
    assert len(found) == 1, f"session lock files in --journal-dir: {found}"
    assert not os.path.exists(box_of(P.USER) + ".pop3d-session"), "a lock file beside the mailbox"
    return found[0]


lockfile, n = run_case(("--journal-dir", jdir), in_journal_dir)
print(f"ok: in --journal-dir ({os.path.basename(lockfile)}): {n} deliveries during sessions, "
      f"nothing lost")
