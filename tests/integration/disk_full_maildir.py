"""Disk full and a Maildir: sessions (USER, PASS, RETR, DELE, QUIT) on a
Maildir with a maildirsize file in a small tmpfs that is full in different
ways when QUIT comes:
  full       no free page at all, from before the login;
  inodes     pages free but no inode (the journal cannot be created);
  torn       one page free and a journal of more than one page (many long
             names): the journal's write fails half way;
  quota      room for a one-page journal but not for maildirsize to grow
             (it fills exactly one page, and the deleted files have a second
             link, so unlinking them frees nothing);
  recovery   an update killed just after its journal was committed
             (tests/pop3d-fault, POP3D_KILL_AT_STEP), then the disk filled up
             (no page, the deleted files linked elsewhere): the next login
             must finish it, or answer -ERR [SYS/TEMP] and finish it once
             there is room.
Each must lose no mail: either the update completes (+OK, all the deletions
applied) or the client gets -ERR [SYS/TEMP] and nothing is deleted, or what
was begun is finished by the next login (the journal kept). Once there is
room again the next login sees a consistent Maildir (every kept message,
byte-identical; the deletions all or none; no journal left behind to block
it; maildirsize's totals those of the files), and the same deletions go
through. Needs root (mount)."""
import os
import random
import subprocess
import sys

import pop3lib as P

if not P.as_root():
    print("skipped: mounting a tmpfs needs root")
    sys.exit(77)   # skipped: tests/run.sh says so instead of counting a pass

PAGE = 4096
JOURNAL = ".pop3d-journal"
QUOTA_HEAD = b"1000000000S,100000C\n"
d = P.tmpdir("disk-full-maildir")
failures = []
drift = set()


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL " + what, flush=True)
    return cond


# The crash test build, as POP3D names the binary under test (relative to the tree).
FAULT = os.path.join(P.ROOT, os.environ.get("POP3D_FAULT") or "tests/pop3d-fault")


class Session:
    """./pop3d (or binary) on pipes, serving ROOT/%u/ (a Maildir)."""

    def __init__(self, root, binary=None, env=None):
        self.p = subprocess.Popen(
            [binary or P.POP3D, "--passwd", P.PASSWD, "--mailbox", os.path.join(root, "%u") + "/",
             "--log", os.path.join(d, "pop3d.log"), "--login-delay", "0", *P.root_args(),
             *P.state_args()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.p.stdout.readline()

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.p.stdout.readline()

    def multi(self, text):
        first = self.cmd(text)
        lines = []
        if first.startswith(b"+OK"):
            while (line := self.p.stdout.readline()) not in (b".\r\n", b""):
                lines.append(line)
        return first, lines

    def close(self):
        self.p.stdin.close()
        self.p.stdout.read()
        return self.p.wait(timeout=60)


def make_maildir(md, msgs, long_names=False, quota_page=False):
    """msgs in new/ and cur/ (in that order of delivery); maildirsize. Returns the paths."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub))
    paths = []
    for i, msg in enumerate(msgs):
        name = f"{1765000000 + i}.M{i}P{4000 + i}.diskfull"
        if long_names:
            name += "." + "x" * 120
        name += f",S={len(msg)}"
        path = f"new/{name}" if i % 2 else f"cur/{name}:2,S"
        with open(os.path.join(md, path), "wb") as f:
            f.write(msg)
        paths.append(path)
    quota = QUOTA_HEAD + f"{sum(map(len, msgs))} {len(msgs)}\n".encode()
    if quota_page:   # "0 0" lines (Maildir++ allows them) up to exactly one page
        pad = PAGE - len(quota)
        quota += b"0" * (1 + pad % 4) + b" 0\n" + b"0 0\n" * (pad // 4 - 1)
    assert not quota_page or len(quota) == PAGE, len(quota)
    with open(os.path.join(md, "maildirsize"), "wb") as f:
        f.write(quota)
    P.give_to_server(md)
    return paths


def free_pages(mnt):
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize // PAGE


def fill(mnt, leave_pages):
    """Fill the file system, then leave exactly leave_pages pages free."""
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb", buffering=0) as f:   # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    size = os.path.getsize(filler)
    with open(filler, "r+b") as f:
        f.truncate(size // PAGE * PAGE)
        while free_pages(mnt) < leave_pages:
            f.truncate(max(0, os.path.getsize(filler) - PAGE))
    check(free_pages(mnt) == leave_pages, f"could not leave {leave_pages} pages free "
          f"({free_pages(mnt)})")


def fill_inodes(mnt):
    n = 0
    os.makedirs(os.path.join(mnt, "inodes"))
    while True:
        try:
            open(os.path.join(mnt, "inodes", str(n)), "wb").close()
        except OSError:
            return n
        n += 1


def unfill(mnt):
    filler = os.path.join(mnt, "filler")
    if os.path.exists(filler):
        os.unlink(filler)
    subprocess.run(["rm", "-rf", os.path.join(mnt, "inodes"), os.path.join(mnt, "links")])


def state(md):
    """{base name: content} of new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(md, sub)):
            if not name.startswith("."):
                with open(os.path.join(md, sub, name), "rb") as f:
                    out.setdefault(name.split(":")[0], []).append(f.read())
    return out


def quota_totals(md):
    with open(os.path.join(md, "maildirsize"), "rb") as f:
        lines = f.read().split(b"\n")
    if lines[0] + b"\n" != QUOTA_HEAD:
        return None
    return tuple(map(sum, zip(*[map(int, l.split()) for l in lines[1:] if l.strip()])))


def consistent(case, md, msgs, paths, dele):
    """The Maildir as a client may find it: every kept message once and
    byte-identical, the deletions all or none, maildirsize right. Returns
    whether the deletions were applied."""
    got = state(md)
    bases = [os.path.basename(p).split(":")[0] for p in paths]
    for i, (b, msg) in enumerate(zip(bases, msgs), 1):
        if i in dele:
            continue
        check(got.get(b) == [msg], f"{case}: kept message {i} ({b}) lost or changed")
    back = sum(1 for i in dele if bases[i - 1] in got)
    check(back in (0, len(dele)), f"{case}: {back} of the {len(dele)} deleted messages are "
          "still there: the deletions were half applied")
    check(set(got) <= set(bases), f"{case}: files that were never delivered: "
          f"{sorted(set(got) - set(bases))}")
    files = (sum(len(c) for cs in got.values() for c in cs), sum(len(cs) for cs in got.values()))
    totals = quota_totals(md)
    if totals != files and case.startswith("quota") and totals and \
            files[0] <= totals[0] <= sum(map(len, msgs)) and files[1] <= totals[1] <= len(msgs):
        # No room to record the deletions: maildir_update.c logs it and goes
        # on (Maildir++ readers recalculate a stale maildirsize); never fewer.
        drift.add(f"{totals[1] - files[1]} deleted files not recorded in maildirsize")
    else:
        check(totals == files, f"{case}: maildirsize totals {totals}, the files {files}")
    return back == 0


def session(case, root, msgs, dele, before_quit=None, binary=None, env=None):
    """Log in, RETR the first message to delete, DELE, (before_quit), QUIT.
    The QUIT answer, or None when the login failed."""
    s = Session(root, binary, env)
    if not (s.cmd("USER alice").startswith(b"+OK") and s.cmd("PASS secret").startswith(b"+OK")):
        s.close()
        return None
    r, lines = s.multi(f"RETR {dele[0]}")
    check(r.startswith(b"+OK") and P.unstuff(lines) == P.wire_form(msgs[dele[0] - 1]),
          f"{case}: RETR {dele[0]} on a full disk: {r!r}")
    for n in dele:
        check(s.cmd(f"DELE {n}").startswith(b"+OK"), f"{case}: DELE {n}")
    if before_quit:
        before_quit()
    q = s.cmd("QUIT")
    s.close()
    return q


def killed_after_commit(case, mnt, md, msgs, paths, dele):
    """A session whose update is killed at the first step that leaves the
    journal with nothing yet removed (each step tried in turn on a copy)."""
    if not os.access(FAULT, os.X_OK):
        check(False, f"{FAULT} is missing: make tests/pop3d-fault (make check builds it)")
        return b""
    copy = os.path.join(mnt, "copy")
    subprocess.run(["cp", "-a", md, copy], check=True)
    for step in range(1, 40):
        env = dict(os.environ, POP3D_KILL_AT_STEP=str(step))
        session(case, mnt, msgs, dele, binary=FAULT, env=env)
        left = os.path.exists(os.path.join(md, JOURNAL))
        if left and all(os.path.exists(os.path.join(md, p)) for p in paths):
            subprocess.run(["rm", "-rf", copy])
            return b"killed"
        subprocess.run(["rm", "-rf", md], check=True)
        subprocess.run(["cp", "-a", copy, md], check=True)
    check(False, f"{case}: no step of the update left its journal before removing a file")
    return b""


def run_case(case, n_msgs, dele, leave_pages=None, inodes=False, long_names=False,
             quota_page=False, links=False):
    mnt = os.path.join(d, case)
    os.makedirs(mnt)
    opts = "size=4m,mode=0755" + (",nr_inodes=400" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt], check=True)
    try:
        rng = random.Random(case)
        msgs = [P.message(rng, i, size=rng.choice([300, 1500])) for i in range(n_msgs)]
        md = os.path.join(mnt, "alice")
        paths = make_maildir(md, msgs, long_names, quota_page)

        def link():   # a second link to each file to delete: unlinking frees no page
            if links:
                os.makedirs(os.path.join(mnt, "links"))
                for n in dele:
                    os.link(os.path.join(md, paths[n - 1]), os.path.join(mnt, "links", str(n)))
        if case != "recovery":
            link()

        def full():
            if inodes:
                fill_inodes(mnt)
            else:
                fill(mnt, leave_pages)
        if case == "full":
            full()   # full before the login
            q = session(case, mnt, msgs, dele)
        elif case == "recovery":
            killed_after_commit(case, mnt, md, msgs, paths, dele)
            link()
            full()
            s = Session(mnt)
            s.cmd("USER alice")
            q = s.cmd("PASS secret")   # the login's recovery: its answer stands for QUIT's
            if q.startswith(b"+OK"):
                s.cmd("QUIT")
            s.close()
        else:
            q = session(case, mnt, msgs, dele, before_quit=full)
        check(q is not None, f"{case}: login refused on a full disk")
        q = q or b""
        journal = os.path.exists(os.path.join(md, JOURNAL))
        unfill(mnt)
        # Without a journal, the Maildir must already be consistent.
        applied = None if journal else \
            consistent(case + " (before the next login)", md, msgs, paths, dele)
        if case == "recovery" and q.startswith(b"+OK"):
            check(applied is True and not journal,
                  f"{case}: the login said +OK but did not finish the update (journal {journal})")
            outcome = "the login finished the update"
        elif case == "recovery":
            check(q.startswith(b"-ERR [SYS/TEMP]"), f"{case}: the login answered {q!r}")
            outcome = "the login refused, journal kept" if journal else "?"
            check(journal, f"{case}: the login refused and the journal is gone")
        elif q.startswith(b"+OK"):
            check(applied is True,
                  f"{case}: QUIT said +OK but the deletions are not all done (journal {journal})")
            outcome = "the update completed"
        elif q.startswith(b"-ERR [SYS/TEMP]"):
            check(applied is not True, f"{case}: QUIT said {q!r} but the deletions were "
                  "applied and no journal is left: the client was told nothing was deleted")
            check(b"disk full" in q, f"{case}: QUIT said {q!r}, not why (disk full)")
            outcome = "a journal kept for the next login" if journal else "nothing deleted"
        else:
            check(False, f"{case}: QUIT answered {q!r}")
            outcome = "?"
        # Room again: the next login sees a consistent Maildir, then the same deletions.
        s = Session(mnt)
        s.cmd("USER alice")
        r2 = s.cmd("PASS secret")
        check(r2.startswith(b"+OK"), f"{case}: the login after the disk full: {r2!r}")
        if r2.startswith(b"+OK"):
            s.cmd("QUIT")
        s.close()
        left = [n for n in os.listdir(md) if n.startswith(JOURNAL)]
        check(not left, f"{case}: {left} left after a login")
        done = consistent(case + " (after the next login)", md, msgs, paths, dele)
        if not done:
            q2 = session(case + " retry", mnt, msgs, dele)
            check(q2 is not None and q2.startswith(b"+OK"), f"{case}: the retry's QUIT: {q2!r}")
            check(consistent(case + " (after the retry)", md, msgs, paths, dele),
                  f"{case}: the retry deleted nothing")
        print(f"{case}: {'PASS' if case == 'recovery' else 'QUIT'} {q.strip().decode(errors='replace')[:60]} -> {outcome}; "
              f"next login consistent{'' if done else ', the retry deleted them'}"
              f"{''.join('; ' + x for x in sorted(drift))}", flush=True)
        drift.clear()
    finally:
        # Lazy: a failed check leaves its pop3d running, which keeps the mount busy.
        subprocess.run(["umount", "--lazy", mnt])


CASES = {
    "full": dict(n_msgs=12, dele=[1, 4, 7], leave_pages=0),
    "inodes": dict(n_msgs=12, dele=[2, 3, 12], inodes=True),
    "torn": dict(n_msgs=80, dele=list(range(1, 80, 2)), leave_pages=1, long_names=True),
    "quota": dict(n_msgs=12, dele=[1, 5, 6, 11], leave_pages=1, quota_page=True, links=True),
    "recovery": dict(n_msgs=12, dele=[2, 7, 8], leave_pages=0, links=True),
}
for case in sys.argv[1:] or CASES:
    run_case(case, **CASES[case])
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
