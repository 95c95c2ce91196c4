"""Crash trials: a pop3d that applies deletions is SIGKILLed at some point of
its update; mail may arrive before anyone repairs the mailbox; then recovery
runs. The verdict counts messages lost and duplicated."""
import fcntl
import os
import random
import signal
import subprocess
import time

import pop3lib as P

FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")


def deliver(box, msgs, sender="mda@example.org"):
    """Append like an MDA that broke a stale dotlock: fcntl lock + append."""
    with open(box, "ab") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        f.write(P.mbox_of(msgs, sender=sender))
        f.flush()
        os.fsync(f.fileno())
        fcntl.lockf(f, fcntl.LOCK_UN)


def run_session(d, dele, env_extra, during=None, kill_after=None, extra=()):
    """Log in, DELE, maybe deliver during the session, QUIT. Returns the exit status."""
    env = dict(os.environ, **env_extra)
    s = P.Pop3Pipe(os.path.join(d, "%u.mbox"), env=env, binary=FAULT, extra=extra)
    assert s.cmd("USER alice").startswith(b"+OK")
    r = s.cmd("PASS secret")
    assert r.startswith(b"+OK"), r
    for n in dele:
        assert s.cmd(f"DELE {n}").startswith(b"+OK")
    if during:
        deliver(os.path.join(d, "alice.mbox"), during)
    s.p.stdin.write(b"QUIT\r\n")
    s.p.stdin.flush()
    if kill_after is not None:      # a kill from outside, at a random instant
        time.sleep(kill_after)
        try:
            s.p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        s.p.stdin.close()
    except BrokenPipeError:
        pass
    s.p.stdout.read()
    return s.p.wait(timeout=60)


def recover(d, env_extra=None, extra=()):
    env = dict(os.environ, **(env_extra or {}))
    box = os.path.join(d, "alice.mbox")
    return subprocess.run([FAULT, "--recover", box, "--log", os.path.join(d, "pop3d.log"),
                           *extra], env=env).returncode


def judge(d, original, dele, during, after):
    """(lost, duplicated, ok) for the mailbox after recovery."""
    box = os.path.join(d, "alice.mbox")
    with open(box, "rb") as f:
        got = P.split_mbox(f.read())
    kept = [m for i, m in enumerate(original, 1) if i not in dele]
    applied = kept + during + after
    not_applied = original + during + after
    if got in (applied, not_applied):
        return 0, 0, True
    # Count what went wrong, message by message (messages are all distinct).
    want = set(not_applied)
    lost = sum(1 for m in kept + during + after if got.count(m) == 0)
    dup = sum(1 for m in want if got.count(m) > 1)
    return lost, dup, False


def trial(d, rng, kill_step=None, kill_recover_step=None, kill_after=None,
          n_msgs=30, big=700_000, jdir=None):
    """One crash trial in directory d; journals in jdir (--journal-dir) when given.
    Returns (lost, duplicated, ok, update killed, recovery killed)."""
    extra = ["--journal-dir", jdir] if jdir else []
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    box = os.path.join(d, "alice.mbox")
    original = [P.message(rng, i, size=rng.choice([300, 2000, 9000])) for i in range(n_msgs)]
    if big:  # kept data spanning several copy chunks: many steps inside the move
        original[n_msgs // 2] = P.message(rng, 999, size=big)
    with open(box, "wb") as f:
        f.write(P.mbox_of(original))
    dele = sorted(rng.sample(range(1, n_msgs + 1), rng.randint(1, n_msgs // 3)))
    during = [P.message(rng, 5000)] if rng.random() < 0.5 else []
    env = {}
    if kill_step is not None:
        env["POP3D_KILL_AT_STEP"] = str(kill_step)
    status = run_session(d, dele, env, during=during, kill_after=kill_after, extra=extra)
    killed = status == -signal.SIGKILL
    after = []
    if killed and rng.random() < 0.5:
        # An MDA breaks our stale dotlock and delivers before anyone recovers.
        try:
            os.unlink(box + ".lock")
        except FileNotFoundError:
            pass
        after = [P.message(rng, 7000)]
        deliver(box, after)
    recovery_killed = False
    if kill_recover_step is not None:
        recovery_killed = recover(d, {"POP3D_KILL_RECOVER_AT_STEP":
                                      str(kill_recover_step)}, extra) == -signal.SIGKILL
    rc = recover(d, extra=extra)
    assert rc == 0, f"recovery failed with {rc}: {open(os.path.join(d, 'pop3d.log')).read()}"
    assert not os.path.exists(box + ".pop3d-journal"), "journal left after recovery"
    if jdir:   # journals live in the account's own JOURNAL_DIR/UID, which stays
        left = [os.path.join(sub, n) for sub in os.listdir(jdir)
                for n in os.listdir(os.path.join(jdir, sub))]
        assert left == [], f"journal left in {jdir}: {left}"
    lost, dup, ok = judge(d, original, dele, during, after)
    return lost, dup, ok, killed, recovery_killed
