"""Random power-cut trials (tests/powercut/run.sh TRIALS [SEED]): each picks a
deletion pattern, a mailbox, an MDA that fsyncs (or, one time in five, does
not), a cut (a durability event or a write, sometimes none: a cut after the
session), the strict image or a random subset of the undurable changes,
sometimes a second cut during the recovery, mail delivered after the reboot,
and recovery by --recover or by the next login. Prints failing trials and
`N trials, L lost, D duplicated, C corrupted, P partial, U unrecoverable`
(messages lost, duplicated, corrupted; trials with deletions partly applied,
trials whose mailbox did not recover)."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pclib as L  # noqa: E402


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    why = L.fuse_usable()
    if why:
        print(f"skipped: {why}")
        return 77
    work = L.P.tmpdir("powercut-stress")
    master = random.Random(seed)
    verdicts = []
    start = time.time()
    for t in range(trials):
        rng = random.Random(master.random())
        sc = L.Scenario(rng.choice(L.PATTERNS), rng.random(), n_msgs=rng.randint(4, 16),
                        mda_fsync=rng.random() >= 0.2)
        r = rng.random()
        cut = ("none" if r < 0.1 else f"sync:{rng.randint(1, 8)}" if r < 0.6
               else f"write:{rng.randint(1, 60)}")
        variant = rng.choice(("strict", "subset"))
        cut_recovery = f"sync:{rng.randint(1, 6)}" if rng.random() < 0.2 else None
        v = L.trial(work, sc, cut, variant=variant, rng=rng.randint(0, 1 << 30),
                    how=rng.choice(("recover", "login")), after=rng.random() < 0.3,
                    cut_recovery=cut_recovery)
        verdicts.append(v)
        if L.bad(v):
            print(f"trial {t}: {sc.pattern} mda_fsync={sc.mda_fsync} cut {cut} {variant} "
                  f"recovery cut {cut_recovery}: " +
                  ", ".join(f"{k} {v[k]}" for k in ("lost", "duplicated", "corrupted",
                                                    "partial", "unrecoverable") if v[k]),
                  flush=True)
        if (t + 1) % 100 == 0:
            print(f"... {t + 1} trials, {time.time() - start:.0f} s", flush=True)
    print(L.summary(trials, verdicts))
    return 1 if any(L.bad(v) for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
