"""SIGKILL at every step of a Maildir's update at QUIT (tests/pop3d-fault,
POP3D_KILL_AT_STEP), and at every step of the recovery after one
(POP3D_KILL_RECOVER_AT_STEP), recovered by the next login or by pop3d
--recover, with mail delivered during the session and after the crash and
files another client moved meanwhile: every message not deleted is there
exactly once and byte-identical, the deleted ones are all gone or all there,
and maildirsize records no deletion twice."""
import os
import random
import signal
import subprocess
import sys

import pop3lib as P

FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")
QUOTA_HEAD = b"1000000000S,100000C\n"
N_MSGS = 12


class Trial:
    """One Maildir, one session that deletes, maybe a crash, then recovery."""

    def __init__(self, d, rng):
        self.d = d
        self.rng = rng
        self.md = os.path.join(d, "alice")
        self.log = os.path.join(d, "pop3d.log")
        self.serial = 0
        P._remove_tree(self.md)
        for sub in ("", "new", "cur", "tmp"):
            os.makedirs(os.path.join(self.md, sub), exist_ok=True)
        with open(os.path.join(self.md, "maildirsize"), "wb") as f:
            f.write(QUOTA_HEAD)
        self.original = [P.message(rng, i, size=rng.choice([300, 2000, 9000]))
                         for i in range(N_MSGS)]
        for i, m in enumerate(self.original):
            self.put(m, "cur" if i % 2 else "new", stamp=1700000000 + i)
        P.give_to_server(self.d)

    def name(self, msg, stamp):
        self.serial += 1
        return f"{stamp}.M{self.serial}P{os.getpid()}.kill.example,S={len(msg)}"

    def put(self, msg, sub, stamp):
        """As an MDA delivers: written in tmp/, synced, renamed into new/ (cur/: with flags)."""
        name = self.name(msg, stamp)
        tmp = os.path.join(self.md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(msg)
            f.flush()
            os.fsync(f.fileno())
        P.give_to_server(tmp)
        os.rename(tmp, os.path.join(self.md, sub, name + (":2,S" if sub == "cur" else "")))

    def move(self, n):
        """Another client (an IMAP server) moves message n (from 1) to cur/ or changes its flags."""
        sub, name = self.located(self.original[n - 1])
        base = name.split(":")[0]
        flags = ":2,RS" if sub == "cur" else ":2,S"
        os.rename(os.path.join(self.md, sub, name), os.path.join(self.md, "cur", base + flags))

    def located(self, msg):
        for sub, n in self.files():
            with open(os.path.join(self.md, sub, n), "rb") as f:
                if f.read() == msg:
                    return sub, n
        raise AssertionError("message not found")

    def files(self):
        return {(sub, n) for sub in ("new", "cur")
                for n in os.listdir(os.path.join(self.md, sub)) if not n.startswith(".")}

    def contents(self):
        out = []
        for sub, n in self.files():
            with open(os.path.join(self.md, sub, n), "rb") as f:
                out.append(f.read())
        return out

    def pop3d(self, env_extra, extra=()):
        return subprocess.Popen(
            [FAULT, "--passwd", P.PASSWD, "--mailbox", os.path.join(self.d, "%u/"),
             "--log", self.log, "--login-delay", "0", *P.root_args(), *P.state_args(), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ, **env_extra))

    def session(self, dele, env_extra, during):
        """Log in, DELE, let `during` act, QUIT. The exit status, and the answers."""
        p = self.pop3d(env_extra)
        cmds = ["USER alice", "PASS secret"] + [f"DELE {n}" for n in dele]
        out = [p.stdout.readline()]
        for c in cmds:
            p.stdin.write(c.encode() + b"\r\n")
            p.stdin.flush()
            out.append(p.stdout.readline())
        assert all(l.startswith(b"+OK") for l in out), (out, open(self.log).read()[-2000:])
        during()
        try:
            p.stdin.write(b"QUIT\r\n")
            p.stdin.close()
        except BrokenPipeError:
            pass
        out += p.stdout.read().splitlines()
        return p.wait(timeout=60), out

    def login_recovers(self, env_extra=None):
        """The next login: recovery, then STAT. The count, or None when it was killed."""
        p = self.pop3d(env_extra or {})
        try:
            p.stdin.write(b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
            p.stdin.close()
        except BrokenPipeError:
            pass
        out = p.stdout.read().splitlines()
        status = p.wait(timeout=60)
        # Recovery runs in the worker: its death is the login's -ERR [SYS/TEMP].
        if status == 0 and len(out) >= 3 and out[2].startswith(b"-ERR [SYS/TEMP]"):
            with open(self.log) as f:
                assert "was killed by signal 9" in f.read()[-1000:], out
            return None
        assert status == 0 and len(out) >= 4 and out[3].startswith(b"+OK"), \
            (status, out, open(self.log).read()[-2000:])
        return int(out[3].split()[1])

    def recover(self, env_extra=None):
        r = subprocess.run([FAULT, "--recover", self.md + "/", "--log", self.log],
                           env=dict(os.environ, **(env_extra or {})), stdout=subprocess.PIPE)
        return r.returncode, r.stdout

    def quota_deletions(self):
        """The deletions maildirsize records (its negative lines): (count, octets)."""
        with open(os.path.join(self.md, "maildirsize"), "rb") as f:
            data = f.read()
        assert data.startswith(QUOTA_HEAD) and data.endswith(b"\n"), data
        count = octets = 0
        for line in data[len(QUOTA_HEAD):].splitlines():
            o, c = (int(x) for x in line.split())
            assert o < 0 and c < 0, line
            octets -= o
            count -= c
        return count, octets


def judge(t, dele, during, after):
    """A list of what went wrong (empty: all deleted or none, nothing lost, nothing twice)."""
    got = sorted(t.contents())
    kept = [m for i, m in enumerate(t.original, 1) if i not in dele]
    deleted = [t.original[i - 1] for i in dele]
    applied = sorted(kept + during + after)
    not_applied = sorted(t.original + during + after)
    problems = []
    if got not in (applied, not_applied):
        lost = sum(1 for m in kept + during + after if m not in got)
        dup = sum(1 for m in set(got) if got.count(m) > 1)
        half = sum(1 for m in deleted if m in got)
        problems.append(f"lost {lost}, duplicated {dup}, {half} of {len(deleted)} deleted left")
    left = [n for n in os.listdir(t.md) if n.startswith(".pop3d-journal")]
    if left:
        problems.append(f"journal left: {left}")
    count, octets = t.quota_deletions()
    if count > len(dele) or octets > sum(len(m) for m in deleted):
        problems.append(f"maildirsize records {count} deletions, {octets} octets "
                        f"(of {len(dele)} deleted): counted twice")
    if got == not_applied and count:
        problems.append(f"maildirsize records {count} deletions, none applied")
    return problems


def trial(d, plan, seed, kill_step=None, kill_recover_step=None, by_login=False):
    """(problems, update killed, recovery killed). The plan (which messages are
    deleted, which one another client moves) is the same for every seed, so
    step N is the same point of the update in every trial of a plan."""
    prng = random.Random(plan)
    dele = sorted(prng.sample(range(1, N_MSGS + 1), 5))
    # Plan 1: another client moves a deleted message and a kept one during the session.
    moved = [prng.choice(dele), min(set(range(1, N_MSGS + 1)) - set(dele))] if plan % 2 else []
    rng = random.Random(seed)
    t = Trial(d, rng)
    during_msgs = []

    def during():
        during_msgs.append(P.message(rng, 5000))
        t.put(during_msgs[-1], "new", stamp=1800000000)
        for n in moved:
            t.move(n)

    env = {"POP3D_KILL_AT_STEP": str(kill_step)} if kill_step else {}
    status, out = t.session(dele, env, during)
    killed = status == -signal.SIGKILL
    if not killed:
        assert status == 0 and out[-1].startswith(b"+OK"), (status, out)
    after = []
    if killed and rng.random() < 0.5:
        after.append(P.message(rng, 7000))
        t.put(after[-1], "new", stamp=1900000000)
    rkilled = False
    if kill_recover_step:
        renv = {"POP3D_KILL_RECOVER_AT_STEP": str(kill_recover_step)}
        if by_login:
            rkilled = t.login_recovers(renv) is None
        else:
            rkilled = t.recover(renv)[0] == -signal.SIGKILL
    if by_login:
        n = t.login_recovers()
        kept = N_MSGS - len(dele) + len(during_msgs) + len(after)
        if n not in (kept, kept + len(dele)):
            return [f"STAT after recovery says {n}, expected {kept} or {kept + len(dele)}"], \
                killed, rkilled
    else:
        rc, said = t.recover()
        assert rc == 0, (rc, said, open(t.log).read()[-2000:])
    return judge(t, dele, during_msgs, after), killed, rkilled


d = P.tmpdir("kill-update-maildir")
failures = []
# Every step of the update, for a plan where another client moved a deleted
# and a kept message during the session (the deleted one's lookup by base
# name has steps of its own)
# and one where none was: kill at increasing steps until one completes;
# recovered by the next login and by --recover in turn.
update_points = 0
for plan in (1, 2):
    step = 1
    while True:
        problems, killed, _ = trial(d, plan, step, kill_step=step, by_login=step % 2 == 0)
        failures += [f"plan {plan}, update step {step}: {p}" for p in problems]
        if not killed:
            break
        step += 1
    update_points += step - 1
# The recovery itself killed at each of its steps after the update died at
# its 6th (the 2nd unlink: journal written, synced, renamed, dir synced, 2
# files); the recovery by --recover and by the next login in turn.
recovery_points = 0
rstep = 1
while True:
    by_login = rstep % 2 == 0
    problems, killed, rkilled = trial(d, 1, 1000 + rstep, kill_step=6, kill_recover_step=rstep,
                                      by_login=by_login)
    assert killed, "the update was not killed at step 6"
    how = "login" if by_login else "--recover"
    failures += [f"update step 6, {how} recovery step {rstep}: {p}" for p in problems]
    if not rkilled:
        break
    recovery_points += 1
    rstep += 1
print(f"{update_points + recovery_points} kill points ({update_points} in the update, "
      f"{recovery_points} in recovery), {len(failures)} failed")
for f in failures:
    print("  " + f)
assert update_points >= 25, f"only {update_points} kill points in the update"
assert recovery_points >= 10, f"only {recovery_points} kill points in recovery"
sys.exit(1 if failures else 0)
