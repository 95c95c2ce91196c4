"""The power-cut claim, on pcfs (tests/powercut): a file system that forgets
everything not fsynced. First that pcfs itself forgets and keeps what it
should and that locks work on it; then the walk over every cut point with
./pop3d (no message lost, duplicated, torn, merged; deletions all or none;
recovery +OK); no dotlock left by a cut after the session; the index as a cache (a surviving index never changes an
answer); and the test of the test: builds with one fsync left out
(tests/pop3d-skip-*) must each be caught."""
import fcntl
import mmap
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "powercut"))
import pclib as L  # noqa: E402
import walk as W  # noqa: E402

if os.environ.get("POP3D_NESTED"):
    print("skipped: the power-cut walk runs once, on ./pop3d, not in the sanitizer or valgrind stage")
    sys.exit(77)
why = L.fuse_usable()
if why:
    print(f"skipped: {why}")
    sys.exit(77)
start = time.time()
work = L.P.tmpdir("powercut-self")


def expect(cond, what):
    if not cond:
        print(f"FAIL pcfs: {what}")
        sys.exit(1)


# ---- pcfs forgets what it should, keeps what it should, and locks work ----
seed = os.path.join(work, "seed")
L.fresh(seed)
with open(os.path.join(seed, "old"), "wb") as f:
    f.write(b"durable\n")
with L.Mount(work, seed) as m:
    mnt = m.mnt
    with open(os.path.join(mnt, "old"), "ab") as f:
        f.write(b"appended, never synced\n")
    with open(os.path.join(mnt, "synced"), "wb") as f:      # data synced, entry too
        f.write(b"synced\n")
        f.flush()
        os.fsync(f.fileno())
    with open(os.path.join(mnt, "entry-only"), "wb") as f:  # entry synced, data not
        f.write(b"lost\n")
    with open(os.path.join(mnt, "mapped"), "wb") as f:
        f.write(b"x" * 10000)
    with open(os.path.join(mnt, "mapped"), "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        expect(mm[:] == b"x" * 10000, "mmap read")
        mm.close()
    os.link(os.path.join(mnt, "synced"), os.path.join(mnt, "link"))
    dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    with open(os.path.join(mnt, "no-entry"), "wb") as f:    # data synced, entry not
        f.write(b"gone\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(os.path.join(mnt, "synced"), os.path.join(mnt, "renamed"))   # not synced
    os.close(dfd)
    # Locks: another process must see ours (fcntl, OFD, flock).
    lf = open(os.path.join(mnt, "old"), "rb+")
    fcntl.lockf(lf, fcntl.LOCK_EX)
    fcntl.flock(lf, fcntl.LOCK_EX)
    probe = ("import fcntl, os, sys\n"
             "f = open(sys.argv[1], 'rb+')\n"
             "for name, take in (('fcntl', lambda: fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)),\n"
             "                   ('flock', lambda: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)),\n"
             "                   ('ofd', lambda: fcntl.fcntl(f, fcntl.F_OFD_SETLK,\n"
             "                        __import__('struct').pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0)))):\n"
             "    try:\n"
             "        take()\n"
             "        print(name, 'TAKEN')\n"
             "    except OSError:\n"
             "        print(name, 'busy')\n")
    r = subprocess.run([sys.executable, "-c", probe, os.path.join(mnt, "old")],
                       capture_output=True, text=True)
    expect(r.stdout.split() == ["fcntl", "busy", "flock", "busy", "ofd", "busy"],
           f"locks not seen by another process: {r.stdout} {r.stderr}")
    lf.close()
img = m.image
names = sorted(os.listdir(img))
expect(names == ["entry-only", "link", "mapped", "old", "synced"], f"image entries {names}")
expect(open(os.path.join(img, "old"), "rb").read() == b"durable\n", "unsynced append kept")
expect(open(os.path.join(img, "synced"), "rb").read() == b"synced\n", "synced data lost")
expect(os.stat(os.path.join(img, "link")).st_ino == os.stat(os.path.join(img, "synced")).st_ino,
       "hard link")
expect(open(os.path.join(img, "entry-only"), "rb").read() == b"", "unsynced data kept")
print("pcfs: forgets what was not synced, keeps what was, locks and mmap work")

# ---- the walk with ./pop3d ----
verdicts, failures = W.walk(L.P.POP3D, L.PATTERNS, ("every_other", "first"), random_writes=4,
                            recovery=True)
print("walk: " + L.summary(len(verdicts), verdicts))

# ---- no stale dotlock: the power fails after the session, its lock is gone ----
# (its removal was durable: the next login and the MDAs need not wait it out)
for pattern in ("every_other", "first", "random"):
    v = L.trial(L.P.tmpdir("powercut-dotlock"), L.Scenario(pattern, 400), "none")
    if v["dotlock"] or not v["quit"].startswith(b"+OK"):
        failures.append(f"dotlock {pattern}: a power cut after QUIT left MAILBOX.lock")
        print("FAIL " + failures[-1])
print("dotlock: a power cut after the session leaves no dotlock")

# ---- the index is a cache ----
idx_verdicts = []
had_index = 0
for pi, pattern in enumerate(("every_other", "random")):
    sc = L.Scenario(pattern, 300 + pi)
    nsync = L.trial(L.P.tmpdir("powercut-index"), sc, "none")["stats"]["syncs"]
    for n in list(range(1, nsync + 1)) + ["none"]:
        for rng in range(2):
            cut = "none" if n == "none" else f"sync:{n}"
            v = L.index_trial(L.P.tmpdir("powercut-index"), sc, cut, rng=rng)
            idx_verdicts.append(v)
            had_index += v["had_index"]
            if L.bad(v):
                failures.append(f"index {pattern} {cut} rng {rng}")
                print(f"FAIL index {pattern} {cut} rng {rng}: {v}")
print(f"index: {L.summary(len(idx_verdicts), idx_verdicts)}, an index survived in {had_index}")
if had_index == 0:
    failures.append("index: no index ever survived a cut, nothing was tested")
    print("FAIL " + failures[-1])

# ---- the test of the test ----
caught = []
for skip, nofsync in (("journal", False), ("journal_dir", False), ("mailbox", False),
                      ("mailbox_before_journal", True)):
    binary = os.path.join(L.P.ROOT, "tests", f"pop3d-skip-{skip}")
    if not os.path.exists(binary):
        failures.append(f"{binary} is missing (make powercut-bins)")
        print("FAIL " + failures[-1])
        continue
    pats = (("every_other",), ()) if not nofsync else ((), ("every_other",))
    v, f = W.walk(binary, pats[0], pats[1], random_writes=0, work="powercut-skip",
                  stop_at_first=True, tag=f"caught (without the {skip} fsync):")
    if f:
        caught.append(skip)
    else:
        failures.append(f"a build without the {skip} fsync passed the walk")
        print("FAIL " + failures[-1])
print(f"test of the test: caught the builds without the fsync of: {', '.join(caught)}")
print(f"{len(failures)} failures ({time.time() - start:.0f} s)")
sys.exit(1 if failures else 0)
