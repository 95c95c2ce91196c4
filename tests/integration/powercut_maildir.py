"""The power-cut claim for a Maildir, on pcfs (tests/powercut): first that
pcfs keeps a directory entry's change (unlink, rename) only once its
directory is fsync'd, and that --ignore-sync makes an fsync a no-op; then a
short walk over the cut points of sessions that RETR and DELE while an MDA
delivers into new/ (no message lost, duplicated or torn; each session's
deletions all or none; maildirsize's totals those of the files; recovery
+OK, no journal left), recoveries cut too; and the test of the test: with
the journal's fsync, its directory's or cur/'s made a no-op, the walk must
fail. The longer run: tests/powercut/run.sh --maildir 1000."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "powercut"))
import mdlib as M  # noqa: E402
import mdtrials as T  # noqa: E402

L = M.L
if os.environ.get("POP3D_NESTED"):
    print("skipped: the power-cut walk runs once, on ./pop3d, not in the sanitizer or valgrind stage")
    sys.exit(77)
why = L.fuse_usable()
if why:
    print(f"skipped: {why}")
    sys.exit(77)
start = time.time()
work = L.P.tmpdir("powercut-maildir-self")


def expect(cond, what):
    if not cond:
        print(f"FAIL pcfs: {what}")
        sys.exit(1)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- pcfs: an unlink or rename is durable only once its directory is fsync'd ----
seed = os.path.join(work, "seed")
L.fresh(seed)
for sub in ("new", "cur", "tmp", "keep"):
    os.makedirs(os.path.join(seed, sub))
for p in ("cur/unsynced", "cur/synced", "keep/ignored"):
    with open(os.path.join(seed, p), "wb") as f:
        f.write(p.encode())
with L.Mount(work, seed, ignore_sync="^fsync dir /keep$") as m:
    os.unlink(os.path.join(m.mnt, "cur", "synced"))
    fsync_dir(os.path.join(m.mnt, "cur"))
    os.unlink(os.path.join(m.mnt, "cur", "unsynced"))          # its directory never fsync'd
    with open(os.path.join(m.mnt, "tmp", "moved"), "wb") as f:
        f.write(b"delivered")
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(os.path.join(m.mnt, "tmp"))
    os.rename(os.path.join(m.mnt, "tmp", "moved"), os.path.join(m.mnt, "new", "moved"))
    fsync_dir(os.path.join(m.mnt, "new"))                       # tmp/ not again
    os.unlink(os.path.join(m.mnt, "keep", "ignored"))
    fsync_dir(os.path.join(m.mnt, "keep"))                      # a no-op (--ignore-sync)
img = m.image
expect(sorted(os.listdir(os.path.join(img, "cur"))) == ["unsynced"],
       f"cur/ after the cut: {os.listdir(os.path.join(img, 'cur'))}")
expect(os.listdir(os.path.join(img, "new")) == ["moved"] and
       open(os.path.join(img, "new", "moved"), "rb").read() == b"delivered", "rename into new/")
expect(os.listdir(os.path.join(img, "tmp")) == ["moved"], "the rename's unsynced source side")
expect(os.listdir(os.path.join(img, "keep")) == ["ignored"], "--ignore-sync")
expect(m.stats["events"][-1] == "fsync dir /keep", f"events {m.stats['events']}")
with L.Mount(work, seed, variant="all") as m:   # everything issued is kept
    os.unlink(os.path.join(m.mnt, "cur", "unsynced"))
    os.rename(os.path.join(m.mnt, "cur", "synced"), os.path.join(m.mnt, "new", "synced"))
expect(os.listdir(os.path.join(m.image, "cur")) == [] and
       os.listdir(os.path.join(m.image, "new")) == ["synced"], "--variant all")
print("pcfs: unlink and rename durable only with their directory's fsync; --ignore-sync and "
      "--variant all work")

# ---- the walk with ./pop3d ----
failures = []
verdicts = []
# every other message deleted: each durability event cut, strict and with a
# random subset of the undurable changes, each change cut (a subset), the
# recovery cut at each of its events; with the MDA that does not fsync: the
# durability events, strict
for patterns, nofsync, subsets, writes in ((("every_other",), (), True, -1),
                                          ((), ("random",), False, 0)):
    v, f = T.walk(L.P.POP3D, patterns, nofsync, random_writes=writes, recovery=True,
                  subsets=subsets, ends=1, recovery_variants=("subset",))
    verdicts += v
    failures += f
print("walk: " + M.summary(len(verdicts), verdicts))

# ---- the test of the test: each fsync left out must be caught ----
caught = []
for what, regex in (("the journal's", r"^f(data)?sync \.pop3d-journal"),
                    ("the journal's directory's", rf"^fsync dir /{M.USER}$"),
                    ("cur/'s", rf"^fsync dir /{M.USER}/cur$")):
    v, f = T.walk(L.P.POP3D, ("every_other",), (), random_writes=0, work="powercut-maildir-skip",
                  stop_at_first=True, tag=f"caught (without {what} fsync):", ignore_sync=regex,
                  subsets=False, ends=0, from_event=M.JOURNAL)
    if f:
        caught.append(what)
    else:
        failures.append(f"a walk with {what} fsync made a no-op passed")
        print("FAIL " + failures[-1])
print(f"test of the test: caught the walks without the fsync of: {', '.join(caught)}")
print(f"{len(failures)} failures ({time.time() - start:.0f} s)")
sys.exit(1 if failures else 0)
