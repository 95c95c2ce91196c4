"""Walk every cut point: for each deletion pattern, cut the power at every
durability event of the session (the MDA's, the update's) and once after the
last (the session over, its unsynced changes lost or kept), each with the
strict image and with a random subset of the undurable changes kept; at
random writes between them; recover by --recover or by the next login; cut
recoveries at each of their durability events too. Also with an MDA that does
not fsync: its mail may be lost, nothing else, and the mailbox must recover.

    walk.py [--binary PATH] [--patterns a,b] [--recovery] [--expect-failure]

Prints one line per failing trial and the summary line; exit 0 when no trial
failed (with --expect-failure: when at least one did, the test of the test).
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pclib as L  # noqa: E402


def walk(binary, patterns, nofsync_patterns=(), random_writes=4, recovery=False,
         work="powercut-walk", stop_at_first=False, tag="FAIL"):
    """(verdicts, failures) of the walk; prints each failure."""
    work = L.P.tmpdir(work)
    verdicts = []
    failures = []

    class Stop(Exception):
        pass

    def run(label, sc, cut, **kw):
        v = L.trial(work, sc, cut, binary=binary, **kw)
        verdicts.append(v)
        if L.bad(v):
            failures.append(label)
            print(f"{tag} {label}: " + ", ".join(f"{k} {v[k]}" for k in
                  ("lost", "duplicated", "corrupted", "partial", "unrecoverable") if v[k]) +
                  f" (cut at {v['stats']['cut']})", flush=True)
            if stop_at_first:
                raise Stop()
        return v

    plan = [(p, True) for p in patterns if p] + [(p, False) for p in nofsync_patterns if p]
    try:
        for pi, (pattern, mda_fsync) in enumerate(plan):
            sc = L.Scenario(pattern, 100 + pi, mda_fsync=mda_fsync)
            if not mda_fsync:
                pattern += "/mda-nofsync"
            dry = run(f"{pattern} no cut", sc, "none")
            events = dry["stats"]["events"]
            nsync = dry["stats"]["syncs"]
            nwrite = dry["stats"]["writes"]
            for n in range(1, nsync + 1):
                how = "recover" if n % 2 else "login"
                run(f"{pattern} sync {n}/{nsync} ({events[n - 1]}) {how}", sc, f"sync:{n}",
                    how=how)
                run(f"{pattern} sync {n}/{nsync} ({events[n - 1]}) subset", sc, f"sync:{n}",
                    variant="subset", rng=n, how=how)
            for rng in range(3):
                run(f"{pattern} after the end, subset {rng}", sc, "none", variant="subset",
                    rng=rng, how="login", after=rng == 1)
            r = random.Random(pi)
            for k in range(random_writes):
                w = r.randint(1, nwrite)
                run(f"{pattern} write {w}/{nwrite} subset", sc, f"write:{w}", variant="subset",
                    rng=w, how=("recover", "login")[k % 2], after=k % 3 == 0)
            if recovery and mda_fsync and pattern in ("every_other", "random"):
                # the power fails at the move's fdatasync (the last one: the first
                # makes the mailbox durable before the journal is written), then
                # again at each durability event of the recovery
                mid = len(events) - events[::-1].index("fdatasync alice.mbox")
                probe = run(f"{pattern} recovery probe", sc, f"sync:{mid}", cut_recovery="none")
                rsync = probe["rstats"]["syncs"]
                if rsync == 0:
                    failures.append(f"{pattern}: no journal to recover after sync {mid}")
                    print(f"FAIL {failures[-1]}")
                for rn in range(1, rsync + 1):
                    for variant in ("strict", "subset"):
                        run(f"{pattern} sync {mid}, recovery sync {rn}/{rsync} {variant}", sc,
                            f"sync:{mid}", cut_recovery=f"sync:{rn}", variant=variant, rng=rn)
    except Stop:
        pass
    return verdicts, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary")
    ap.add_argument("--patterns", default=",".join(L.PATTERNS))
    ap.add_argument("--nofsync-patterns", default="every_other,first")
    ap.add_argument("--expect-failure", action="store_true")
    ap.add_argument("--random-writes", type=int, default=4, help="write cuts per pattern")
    ap.add_argument("--recovery", action="store_true", help="cut recoveries too")
    args = ap.parse_args()
    why = L.fuse_usable()
    if why:
        print(f"skipped: {why}")
        return 77
    start = time.time()
    verdicts, failures = walk(args.binary or L.P.POP3D, args.patterns.split(","),
                              args.nofsync_patterns.split(","), args.random_writes,
                              args.recovery, stop_at_first=args.expect_failure,
                              tag="caught" if args.expect_failure else "FAIL")
    print(L.summary(len(verdicts), verdicts) + f" ({time.time() - start:.0f} s)")
    if args.expect_failure:
        if not failures:
            print("the walk caught nothing")
        return 0 if failures else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
