"""Power-cut trials of a Maildir on pcfs (tests/powercut/pcfs.py), as
pclib.py's are of an mbox: a pop3d session RETRs and DELEs messages of
MNT/alice/ (new/ and cur/, a maildirsize file) while an MDA delivers into
new/, the power fails at a chosen event, the durable image is recovered as a
user would (pop3d --recover MNT/alice/, or the next login), and the Maildir
is judged: every kept message there once and byte-identical, the session's
deletions all applied or none (all once QUIT said +OK), the mail the MDA had
made durable there, no journal left, tmp/ untouched, maildirsize's totals
those of the files (Maildir++)."""
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pclib as L  # noqa: E402

P = L.P
USER = "alice"
TEMPLATE = "%u/"            # a trailing '/': a Maildir
JOURNAL = ".pop3d-journal"
QUOTA = "maildirsize"
QUOTA_HEAD = b"1000000000S,100000C\n"
STALE_TMP = "1600000000.M1P1.pcfs"   # left in tmp/ by an old crash: never read nor removed
MDA = os.path.join(L.HERE, "mda_maildir.py")
PATTERNS = L.PATTERNS
BASE = 1765000000           # delivery times: the order pop3d lists the messages in
KINDS = ("totals", "lost", "duplicated", "corrupted", "partial", "unrecoverable", "refused",
         "quota")
FAILS = KINDS[1:]


def base_of(name):
    """The unique part of a Maildir name (before ':'): what stays when flags change."""
    return name.split(":", 1)[0]


class Scenario:
    """The Maildir, the deletions and the mail delivered, fixed by a seed.
    original: [(path below the Maildir, content)] in delivery order."""

    def __init__(self, pattern, seed, n_msgs=10, mda_fsync=True):
        rng = random.Random(seed)
        self.pattern = pattern
        self.original = []
        for i in range(n_msgs):
            # one bigger message: a RETR that spans several pipe buffers
            msg = P.message(rng, i, size=120_000 if i == n_msgs // 2 else
                            rng.choice([300, 2000, 9000]))
            name = f"{BASE + i}.M{rng.randint(0, 999999)}P{1000 + i}.pcfs"
            r = rng.random()
            if r < 0.4:     # as Dovecot names them
                name += f",S={len(msg)},W={len(P.wire_form(msg))}"
            elif r < 0.6:   # as Courier's maildrop
                name += f",S={len(msg)}"
            if rng.random() < 0.5:
                self.original.append((f"new/{name}", msg))
            else:
                self.original.append((f"cur/{name}{rng.choice((':2,', ':2,S', ':2,RS'))}", msg))
        self.dele = L.deletions(pattern, n_msgs, rng)
        self.during = [] if pattern == "tail" else \
            [(f"{BASE + 10**6}.M1P5000.pcfs", P.message(rng, 5000))]
        self.after = [(f"{BASE + 2 * 10**6}.M1P7000.pcfs", P.message(rng, 7000))]
        self.mda_fsync = mda_fsync


def maildir(root):
    return os.path.join(root, USER)


def make_seed(sc, seed_dir):
    L.fresh(seed_dir)
    md = maildir(seed_dir)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), mode=0o700)
    for path, msg in sc.original:
        with open(os.path.join(md, path), "wb") as f:
            f.write(msg)
    with open(os.path.join(md, "tmp", STALE_TMP), "wb") as f:
        f.write(b"Subject: half a delivery\n")
    total = sum(len(m) for _, m in sc.original)
    with open(os.path.join(md, QUOTA), "wb") as f:
        f.write(QUOTA_HEAD + f"{total} {len(sc.original)}\n".encode())
    os.chmod(md, 0o700)
    os.chmod(seed_dir, 0o755)
    L.chown_tree(md)


def mda(md, name, msg, fsync=True):
    """Deliver one message into new/, as the account (the files are its own);
    True when the MDA reported it durable."""
    mda_copy = os.path.join(P.tmpdir("powercut-mda"), os.path.basename(MDA))
    if not os.path.exists(mda_copy):   # where the account can read it, wherever the tree is
        P.shared_copy(MDA, os.path.dirname(mda_copy))
    args = [L.FS_PYTHON, mda_copy] + ([] if fsync else ["--no-fsync"]) + [md, name]
    uid, gid = L.nobody()
    return subprocess.run(args, input=msg, capture_output=True, timeout=60, user=uid, group=gid,
                          extra_groups=[]).returncode == 0


def pop3(binary, root, log, extra=()):
    return L.Pop3(binary, root, log, extra, template=TEMPLATE)


def run_session(sc, mnt, binary, log, extra=()):
    """Log in, RETR, DELE, the MDA delivers, QUIT. Returns (delivered durable,
    QUIT answer, whether RETR gave the message's bytes: reads are never cut)."""
    s = pop3(binary, mnt, log, extra)
    durable = []
    quit_answer = b""
    retr_ok = False
    if s.cmd(f"USER {USER}").startswith(b"+OK") and s.cmd("PASS secret").startswith(b"+OK"):
        if s.cmd(f"RETR {sc.dele[0]}").startswith(b"+OK"):
            lines = []
            while (line := s.p.stdout.readline()) not in (b".\r\n", b""):
                lines.append(line)
            retr_ok = P.unstuff(lines) == P.wire_form(sc.original[sc.dele[0] - 1][1])
        ok = all(s.cmd(f"DELE {n}").startswith(b"+OK") for n in sc.dele)
        for name, msg in sc.during:
            if mda(maildir(mnt), name, msg, sc.mda_fsync):
                if sc.mda_fsync:
                    durable.append((name, msg))
            else:
                ok = False   # the power is off: the session goes nowhere
        if ok:
            quit_answer = s.cmd("QUIT")
    s.end()
    return durable, quit_answer, retr_ok


def recover(root, binary, log, how, extra=()):
    """Recover as a user would. True when it answered +OK (a -ERR [SYS/TEMP]
    may pass on one retry) and left no journal."""
    md = maildir(root)
    for attempt in range(2):
        if how == "recover":
            rc = subprocess.run([binary, "--recover", md + "/", "--log", log, *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            ok = rc == 0
        else:
            s = pop3(binary, root, log, extra)
            s.cmd(f"USER {USER}")
            r = s.cmd("PASS secret")
            ok = r.startswith(b"+OK")
            if ok:
                ok = s.cmd("STAT").startswith(b"+OK") and s.cmd("QUIT").startswith(b"+OK")
            elif not r.startswith(b"-ERR [SYS/TEMP]"):
                s.end()
                return False
            s.end()
        if ok:
            return not os.path.exists(os.path.join(md, JOURNAL))
    return False


def contents(md):
    """{path below the Maildir: content} of new/ and cur/ (names not starting with '.')."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            if not name.startswith("."):
                with open(os.path.join(d, name), "rb") as f:
                    out[f"{sub}/{name}"] = f.read()
    return out


def quota_totals(md):
    """maildirsize's (octets, messages) summed over its lines, or None when it
    is missing, its quota line changed, or a line is not two integers."""
    try:
        with open(os.path.join(md, QUOTA), "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    if lines[0] + b"\n" != QUOTA_HEAD or lines[-1] != b"":
        return None
    octets = count = 0
    for line in lines[1:-1]:
        parts = line.split()
        if len(parts) != 2:
            return None
        try:
            octets += int(parts[0])
            count += int(parts[1])
        except ValueError:
            return None
    return octets, count


def judge(sc, md, durable, delivered, after, acknowledged=False, cut=False):
    """Counts of what went wrong (see KINDS): messages lost, duplicated,
    corrupted; partial: the deletions partly applied; quota: maildirsize's
    totals neither those of the files nor those of the files less the mail the
    MDA delivered (which records nothing there), except (drift, not a
    failure) when the power was cut (cut) and they count more messages
    than there are, never more than there were. acknowledged: QUIT was
    answered +OK, so the deletions were durable then (not the MDA's mail,
    which pop3d never touches: only what its own fsyncs made durable)."""
    got = contents(md)
    by_base = {}
    for path, data in got.items():
        by_base.setdefault(base_of(os.path.basename(path)), []).append(data)
    v = {k: 0 for k in ("lost", "duplicated", "corrupted", "partial")}
    deleted = [m for i, m in enumerate(sc.original, 1) if i in sc.dele]
    kept = [m for i, m in enumerate(sc.original, 1) if i not in sc.dele]
    known = set()
    for path, msg in sc.original + list(delivered) + list(after):
        b = base_of(os.path.basename(path))
        known.add(b)
        present = by_base.get(b, [])
        must = (path, msg) in kept or (path, msg) in durable or (path, msg) in after
        if must and not present:
            v["lost"] += 1
        v["duplicated"] += max(0, len(present) - 1)
        for data in present:
            # a delivery the power cut short may leave its file torn: the MDA's doing
            if data != msg and ((path, msg) not in delivered or (path, msg) in durable):
                v["corrupted"] += 1
    v["corrupted"] += sum(len(d) for b, d in by_base.items() if b not in known)
    back = sum(1 for path, _ in deleted if base_of(os.path.basename(path)) in by_base)
    if acknowledged:
        v["duplicated"] += back
    v["partial"] = 1 if 0 < back < len(deleted) else 0
    if not os.path.exists(os.path.join(md, "tmp", STALE_TMP)):
        v["corrupted"] += 1   # tmp/ is never touched
    totals = quota_totals(md)
    files = (sum(len(d) for d in got.values()), len(got))
    mail = [b for b in by_base if b in {base_of(os.path.basename(p)) for p, _ in
                                           list(delivered) + list(after)}]
    unrecorded = (sum(len(d) for b in mail for d in by_base[b]),
                  sum(len(by_base[b]) for b in mail))
    recorded = (files[0] - unrecorded[0], files[1] - unrecorded[1])
    seed = (sum(len(m) for _, m in sc.original), len(sc.original))
    v["drift"] = 0
    if totals in (files, recorded):
        v["quota"] = 0
    elif cut and totals and recorded[0] <= totals[0] <= seed[0] and \
            recorded[1] <= totals[1] <= seed[1]:
        # Files a crashed update removed and nobody recorded: counted as used
        # until a Maildir++ reader recalculates (maildir_update.c's choice).
        # Never fewer than there are: no deletion recorded twice or unapplied.
        v["quota"] = 0
        v["drift"] = 1
    else:
        v["quota"] = 1
    v["totals"] = totals
    return v


def copy_image(image, dest):
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    shutil.copytree(image, dest, symlinks=True)
    L.chown_tree(maildir(dest))


def imap_moves(sc, md):
    """After the reboot, before the recovery, another client (an IMAP server)
    moves messages as Dovecot does: a deleted one and a kept one from new/ to
    cur/, and the flags of one in cur/ changed. Returns how many it moved."""
    moved = 0
    for want_deleted in (True, False):
        for i, (path, _) in enumerate(sc.original, 1):
            if (i in sc.dele) != want_deleted:
                continue
            sub, name = path.split("/")
            if not os.path.exists(os.path.join(md, path)):
                continue
            new = f"cur/{name}:2,S" if sub == "new" else \
                f"cur/{name.split(':')[0]}:2,{'T' if want_deleted else 'F'}S"
            os.rename(os.path.join(md, path), os.path.join(md, new))
            moved += 1
            break
    return moved


def trial(work, sc, cut, variant="strict", rng=1, binary=None, how="recover",
          after=False, cut_recovery=None, extra=(), ignore_sync=None, moves=False):
    """One power cut. Returns a verdict dict (with 'stats' of the session's run
    and 'rstats' of a cut recovery). moves: imap_moves() before the recovery."""
    binary = binary or P.POP3D
    seed = os.path.join(work, "seed")
    log = os.path.join(work, "pop3d.log")
    make_seed(sc, seed)
    with L.Mount(work, seed, cut, variant, rng, ignore_sync=ignore_sync) as m:
        durable, quit_answer, retr_ok = run_session(sc, m.mnt, binary, log, extra)
    image = m.image
    verdict = {"stats": m.stats, "quit": quit_answer, "unrecoverable": 0,
               "journal": os.path.exists(os.path.join(maildir(image), JOURNAL))}
    delivered = list(sc.during)
    late = []
    rstats = None
    if cut_recovery is not None:
        # The power fails again, during the recovery of that image.
        if verdict["journal"]:
            seed2 = os.path.join(work, "seed2")
            copy_image(image, seed2)
            with L.Mount(work, seed2, cut_recovery, variant, rng, ignore_sync=ignore_sync) as m2:
                subprocess.run([binary, "--recover", maildir(m2.mnt) + "/", "--log", log,
                                *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rstats = m2.stats
            image = m2.image
        else:
            rstats = {"syncs": 0, "writes": 0, "events": [], "cut": None}
    verdict["rstats"] = rstats
    # An MDA delivers after the reboot, before anyone logs in.
    if after and mda(maildir(image), *sc.after[0]):
        late = list(sc.after)
    if moves:
        verdict["moved"] = imap_moves(sc, maildir(image))
    if not recover(image, binary, log, how, extra):
        verdict["unrecoverable"] = 1
    verdict.update(judge(sc, maildir(image), durable, delivered, late,
                         acknowledged=quit_answer.startswith(b"+OK"),
                         cut=bool(m.stats["cut"] or (rstats and rstats["cut"]))))
    # With the power on to the end, the update must have been done: a harness
    # that only ever sees refused updates proves nothing.
    verdict["refused"] = 0 if m.stats["cut"] or quit_answer.startswith(b"+OK") else 1
    verdict["corrupted"] += 0 if retr_ok else 1
    return verdict


def bad(v, quota=True):
    return any(v[k] for k in FAILS if quota or k != "quota")


def summary(n, verdicts):
    t = {k: sum(v[k] for v in verdicts) for k in FAILS}
    return (f"{n} trials, {t['lost']} lost, {t['duplicated']} duplicated, "
            f"{t['corrupted']} corrupted, {t['partial']} partial, "
            f"{t['unrecoverable']} unrecoverable, {t['refused']} refused without a cut, "
            f"{t['quota']} maildirsize wrong "
            f"({sum(v['drift'] for v in verdicts)} with maildirsize counting files a cut "
            "update removed)")


def describe(v):
    return ", ".join(f"{k} {v[k]}" for k in FAILS if v[k]) + \
        f" (cut at {v['stats']['cut']}; QUIT {v['quit'].strip().decode(errors='replace') or '-'}" + \
        (f"; recovery cut at {v['rstats']['cut']}" if v.get("rstats") else "") + \
        f"; maildirsize totals {v['totals']})"
