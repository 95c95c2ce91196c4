"""Power-cut trials on pcfs (tests/powercut/pcfs.py): a pop3d session deletes
messages while an MDA delivers, the power fails at a chosen event, the durable
image is recovered as a user would (pop3d --recover, or the next login), and
the mailbox is judged by the contract's mbox rules."""
import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pop3lib as P  # noqa: E402

PCFS = os.path.join(HERE, "pcfs.py")
MDA = os.path.join(HERE, "mda.py")
FS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BOX = "alice.mbox"
JOURNAL = BOX + ".pop3d-journal"
PATTERNS = ("first", "every_other", "all_but_last", "first_half", "random", "tail")


def fuse_usable():
    """None when pcfs can run here, else why not."""
    if os.geteuid() != 0:
        return "not root (pcfs mounts with allow_other and serves pop3d as nobody)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    r = subprocess.run([FS_PYTHON, "-c", "import sys; sys.path.append('/usr/lib/python3/dist-packages');"
                        " import fusepy"], capture_output=True)
    if r.returncode != 0:
        return "python3-fusepy is not installed"
    return None


class Mount:
    """pcfs mounted on WORK/mnt, seeded from seed; after unmount, .image (WORK/image) and .stats."""

    def __init__(self, work, seed, cut="none", variant="strict", rng=1, meta=None,
                 ignore_sync=None):
        self.mnt = os.path.join(work, "mnt")
        self.image = os.path.join(work, "image")
        self.stats_file = os.path.join(work, "stats.json")
        self.log = os.path.join(work, "pcfs.log")
        self.args = [FS_PYTHON, PCFS, "--seed", seed, "--image", self.image, "--stats",
                     self.stats_file, "--cut", cut, "--variant", variant, "--rng", str(rng),
                     self.mnt] + (["--meta", meta] if meta else []) + \
            (["--ignore-sync", ignore_sync] if ignore_sync else [])
        self.stats = None

    def __enter__(self):
        if os.path.ismount(self.mnt):
            subprocess.run(["umount", self.mnt])
        os.makedirs(self.mnt, exist_ok=True)
        for p in (self.image, self.stats_file):
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)
        self.p = subprocess.Popen(self.args, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.ismount(self.mnt):
            if self.p.poll() is not None or time.time() > deadline:
                raise AssertionError(f"pcfs did not mount: {open(self.log).read()}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        for _ in range(100):
            if subprocess.run(["umount", self.mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)   # a process still has a file open
        else:
            subprocess.run(["umount", "-l", self.mnt])
        self.p.wait(timeout=60)
        with open(self.stats_file) as f:
            self.stats = json.load(f)
        return False


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def chown_tree(path):
    uid, gid = nobody()
    for dirpath, dirnames, filenames in os.walk(path):
        for p in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
            os.chown(p, uid, gid, follow_symlinks=False)


def fresh(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def mda(box, msg, fsync=True):
    """Deliver one message; True when the MDA reported it durable (fsync returned)."""
    args = [sys.executable, MDA] + ([] if fsync else ["--no-fsync"]) + [box]
    return subprocess.run(args, input=P.mbox_of([msg], sender="mda@example.org"),
                          capture_output=True, timeout=60).returncode == 0


class Pop3:
    def __init__(self, binary, mailbox_dir, log, extra=(), template="%u.mbox"):
        self.p = subprocess.Popen(
            [binary, "--passwd", P.PASSWD, "--mailbox", os.path.join(mailbox_dir, template),
             "--log", log, "--login-delay", "0", "--user", "nobody", *P.state_args(), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.greeting = self.p.stdout.readline()

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.p.stdout.readline()

    def end(self):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        rest = self.p.stdout.read()
        return self.p.wait(timeout=120), rest


def deletions(pattern, n, rng):
    if pattern == "first":
        return [1]
    if pattern == "every_other":
        return list(range(1, n + 1, 2))
    if pattern == "all_but_last":
        return list(range(1, n))
    if pattern == "first_half":
        return list(range(1, n // 2 + 1))
    if pattern == "tail":   # everything after the first deleted one: a truncate
        return list(range(n // 2, n + 1))
    return sorted(rng.sample(range(1, n + 1), rng.randint(1, n - 1)))


class Scenario:
    """The mailbox, the deletions and the mail delivered, fixed by a seed."""

    def __init__(self, pattern, seed, n_msgs=10, mda_fsync=True):
        rng = random.Random(seed)
        self.pattern = pattern
        self.original = [P.message(rng, i, size=rng.choice([300, 2000, 9000]))
                         for i in range(n_msgs)]
        # kept data spanning two copy chunks (256 KiB): writes between the syncs
        self.original[n_msgs // 2] = P.message(rng, 999, size=300_000)
        self.dele = deletions(pattern, n_msgs, rng)
        # mail during the session, unless the update is to be a bare truncate
        self.during = [] if pattern == "tail" else [P.message(rng, 5000)]
        self.after = [P.message(rng, 7000)]
        self.mda_fsync = mda_fsync


def run_session(sc, mnt, binary, log, extra=()):
    """Log in, DELE, the MDA delivers, QUIT. Returns (delivered durable, QUIT answer)."""
    s = Pop3(binary, mnt, log, extra)
    durable = []
    quit_answer = b""
    if s.cmd("USER alice").startswith(b"+OK") and s.cmd("PASS secret").startswith(b"+OK"):
        ok = all(s.cmd(f"DELE {n}").startswith(b"+OK") for n in sc.dele)
        for m in sc.during:
            if mda(os.path.join(mnt, BOX), m, sc.mda_fsync):
                if sc.mda_fsync:
                    durable.append(m)
            else:
                ok = False   # the power is off: the session goes nowhere
        if ok:
            quit_answer = s.cmd("QUIT")
    s.end()
    return durable, quit_answer


def make_seed(sc, seed_dir, index=False):
    fresh(seed_dir)
    with open(os.path.join(seed_dir, BOX), "wb") as f:
        f.write(P.mbox_of(sc.original))
    if index:
        os.makedirs(os.path.join(seed_dir, "index"), mode=0o700)
    os.chmod(seed_dir, 0o700)
    chown_tree(seed_dir)


def age_dotlock(image):
    """A dotlock that survived the power cut was made before the reboot, which
    the image never had: date it before this boot (pop3d then breaks it at
    once) and past the MDAs' stale age of 5 minutes."""
    lock = os.path.join(image, BOX + ".lock")
    if os.path.exists(lock):
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        old = min(boot - 60, time.time() - 600)
        os.utime(lock, (old, old))
        return True
    return False


def recover(image, binary, log, how, extra=()):
    """Recover as a user would. True when it answered +OK (a -ERR [SYS/TEMP]
    may pass on one retry)."""
    for attempt in range(2):
        if how == "recover":
            rc = subprocess.run([binary, "--recover", os.path.join(image, BOX), "--log", log,
                                 *extra], stderr=subprocess.DEVNULL).returncode
            ok = rc == 0
        else:
            s = Pop3(binary, image, log, extra)
            s.cmd("USER alice")
            r = s.cmd("PASS secret")
            ok = r.startswith(b"+OK")
            if ok:
                ok = s.cmd("STAT").startswith(b"+OK") and s.cmd("QUIT").startswith(b"+OK")
            elif not r.startswith(b"-ERR [SYS/TEMP]"):
                s.end()
                return False
            s.end()
        if ok:
            return not os.path.exists(os.path.join(image, JOURNAL))
    return False


def judge(sc, data, durable, delivered, after, acknowledged=False):
    """Counts of what went wrong: lost, duplicated, corrupted (messages), partial.
    acknowledged: QUIT was answered +OK, so the update and all mail it moved
    were durable then: deleted messages that come back are duplicates (the
    client downloads them again)."""
    if acknowledged:
        durable = list(delivered)
    got = P.split_mbox(data) if data else []
    if data and not data.startswith(b"From "):
        return {"lost": 0, "duplicated": 0, "corrupted": 1, "partial": 0}
    known = set(sc.original) | set(delivered) | set(after)
    if any(m not in durable for m in delivered) and got and got[-1] not in known:
        # A delivery the power cut short (its fsync never returned) may leave
        # some of its pages at the end: the MDA's torn message, alone or glued
        # to the message before it. Not pop3d's doing; everything else counts.
        last = got.pop()
        glued = [m for m in known if last.startswith(m) and m != last]
        if glued:
            got.append(max(glued, key=len))
    kept = [m for i, m in enumerate(sc.original, 1) if i not in sc.dele]
    deleted = [m for i, m in enumerate(sc.original, 1) if i in sc.dele]
    must = kept + durable + after
    lost = sum(1 for m in must if m not in got)
    dup = sum(got.count(m) - 1 for m in set(got) if m in known and got.count(m) > 1)
    corrupt = sum(1 for m in got if m not in known)
    # In their order: the original messages, then the mail delivered.
    order = [m for m in sc.original + delivered + after if m in got]
    seen = [m for m in dict.fromkeys(got) if m in known]
    if order != seen:
        corrupt += 1
    back = sum(1 for m in deleted if m in got)
    if acknowledged:
        dup += back
    return {"lost": lost, "duplicated": dup, "corrupted": corrupt,
            "partial": 1 if 0 < back < len(deleted) else 0}


def trial(work, sc, cut, variant="strict", rng=1, binary=None, how="recover",
          after=False, cut_recovery=None, extra=()):
    """One power cut. Returns a verdict dict (with 'stats' of the session's run
    and 'rstats' of a cut recovery)."""
    binary = binary or P.POP3D
    seed = os.path.join(work, "seed")
    log = os.path.join(work, "pop3d.log")
    make_seed(sc, seed)
    with Mount(work, seed, cut, variant, rng) as m:
        durable, quit_answer = run_session(sc, m.mnt, binary, log, extra)
    image = m.image
    verdict = {"stats": m.stats, "quit": quit_answer, "unrecoverable": 0, "dotlock": False}
    delivered = list(sc.during)
    late = []
    rstats = None
    if cut_recovery is not None:
        # The power fails again, during the recovery of that image.
        if os.path.exists(os.path.join(image, JOURNAL)):
            seed2 = os.path.join(work, "seed2")
            if os.path.isdir(seed2):
                shutil.rmtree(seed2)
            shutil.copytree(image, seed2, symlinks=True)
            chown_tree(seed2)
            age_dotlock(seed2)
            with Mount(work, seed2, cut_recovery, variant, rng) as m2:
                subprocess.run([binary, "--recover", os.path.join(m2.mnt, BOX), "--log", log,
                                *extra], stderr=subprocess.DEVNULL)
            rstats = m2.stats
            image = m2.image
        else:
            rstats = {"syncs": 0, "writes": 0, "events": [], "cut": None}
    verdict["rstats"] = rstats
    verdict["dotlock"] = age_dotlock(image)
    # An MDA delivers after the reboot, before anyone logs in (not after a
    # delivery the cut left torn: its append would be glued to the fragment).
    if after and all(m in durable for m in delivered):
        if mda(os.path.join(image, BOX), sc.after[0]):
            late = list(sc.after)
    if not recover(image, binary, log, how, extra):
        verdict["unrecoverable"] = 1
    path = os.path.join(image, BOX)
    data = open(path, "rb").read() if os.path.exists(path) else b""
    verdict.update(judge(sc, data, durable, delivered, late,
                         acknowledged=quit_answer.startswith(b"+OK")))
    return verdict


def bad(v):
    return any(v[k] for k in ("lost", "duplicated", "corrupted", "partial", "unrecoverable"))


def summary(n, verdicts):
    t = {k: sum(v[k] for v in verdicts)
         for k in ("lost", "duplicated", "corrupted", "partial", "unrecoverable")}
    return (f"{n} trials, {t['lost']} lost, {t['duplicated']} duplicated, "
            f"{t['corrupted']} corrupted, {t['partial']} partial, {t['unrecoverable']} unrecoverable")


def listing(binary, mnt, log, extra):
    """Log in (a -ERR [SYS/TEMP] may pass on one retry), LIST and UIDL, QUIT:
    (list lines, uidl lines), or None when the login failed."""
    for attempt in range(2):
        s = Pop3(binary, mnt, log, extra)
        s.cmd("USER alice")
        r = s.cmd("PASS secret")
        if not r.startswith(b"+OK"):
            s.end()
            if r.startswith(b"-ERR [SYS/TEMP]"):
                continue
            return None
        out = []
        for c in ("LIST", "UIDL"):
            lines = []
            if s.cmd(c).startswith(b"+OK"):
                while (line := s.p.stdout.readline()) not in (b".\r\n", b""):
                    lines.append(line)
            out.append(lines)
        s.cmd("QUIT")
        s.end()
        return tuple(out)
    return None


def index_trial(work, sc, cut, variant="subset", rng=1, binary=None):
    """The index is a cache: after a power cut at any point, a login that finds
    whatever index survived answers exactly as one without an index, and as
    the mailbox says. The reboot is a mount seeded from the image with the same
    device, inode numbers and times, so a surviving index can match it."""
    binary = binary or P.POP3D
    seed = os.path.join(work, "seed")
    log = os.path.join(work, "pop3d.log")
    make_seed(sc, seed, index=True)
    with Mount(work, seed, cut, variant, rng) as m:
        durable, quit_answer = run_session(sc, m.mnt, binary, log,
                                           ["--index-dir", os.path.join(m.mnt, "index")])
    seed2 = os.path.join(work, "seed2")
    if os.path.isdir(seed2):
        shutil.rmtree(seed2)
    shutil.copytree(m.image, seed2)
    chown_tree(seed2)
    age_dotlock(seed2)
    meta = os.path.join(work, "meta.json")
    shutil.copy(m.stats_file, meta)
    index_dir = os.path.join(seed2, "index")
    had_index = os.path.isdir(index_dir) and len(os.listdir(index_dir)) > 0
    with Mount(work, seed2, "none", meta=meta) as m2:
        idx = ["--index-dir", os.path.join(m2.mnt, "index")]
        first = listing(binary, m2.mnt, log, idx)      # finds the index that survived
        plain = listing(binary, m2.mnt, log, [])
        again = listing(binary, m2.mnt, log, idx)      # the index the first login saved
        with open(os.path.join(m2.mnt, BOX), "rb") as f:
            data = f.read()
    v = {"stats": m.stats, "had_index": had_index, "unrecoverable": 0}
    v.update(judge(sc, data, durable, list(sc.during), [],
                   acknowledged=quit_answer.startswith(b"+OK")))
    if first is None or plain is None or again is None:
        v["unrecoverable"] = 1
        return v
    # The sizes the mailbox gives, by the contract's rules, independently of pop3d.
    want = [f"{i} {len(P.wire_form(msg))}\r\n".encode()
            for i, msg in enumerate(P.split_mbox(data), 1)]
    if first != plain or again != plain or plain[0] != want:
        v["corrupted"] += 1   # a wrong answer
    return v
