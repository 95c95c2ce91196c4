"""Power-cut trials of a Maildir (mdlib.py), two ways:

    mdtrials.py walk [--binary PATH] [--patterns a,b] [--recovery] [--ignore-sync RE]
                     [--expect-failure]
        every durability event of the session cut (strict image and a random
        subset of the undurable changes), after the end, random writes; with
        --recovery, recoveries cut at each of theirs too. With --ignore-sync
        (pcfs: those fsyncs make nothing durable, as a build without them)
        and --expect-failure: exit 0 when a trial failed (the test of the test).
    mdtrials.py stress TRIALS [SEED]
        random trials (tests/powercut/run.sh --maildir TRIALS [SEED]).

Each prints one line per failing trial and the summary line
`N trials, L lost, D duplicated, C corrupted, P partial, U unrecoverable, R refused
without a cut, Q maildirsize wrong (drift)`.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mdlib as M  # noqa: E402

L = M.L


def first_event(events, pattern):
    """The 1-based number of the first durability event matching pattern (a
    substring), or None."""
    for i, e in enumerate(events, 1):
        if pattern in e:
            return i
    return None


def walk(binary, patterns, nofsync_patterns=(), random_writes=4, recovery=False,
         work="powercut-maildir", stop_at_first=False, tag="FAIL", ignore_sync=None,
         subsets=True, ends=3, recovery_variants=("strict", "subset"), from_event=None):
    """(verdicts, failures) of the walk; prints each failure. from_event: cut
    only from the first durability event naming it on (a substring)."""
    work = L.P.tmpdir(work)
    verdicts = []
    failures = []

    class Stop(Exception):
        pass

    def run(label, sc, cut, **kw):
        v = M.trial(work, sc, cut, binary=binary, ignore_sync=ignore_sync, **kw)
        verdicts.append(v)
        if M.bad(v):
            failures.append(label)
            print(f"{tag} {label}: {M.describe(v)}", flush=True)
            if stop_at_first:
                raise Stop()
        return v

    plan = [(p, True) for p in patterns if p] + [(p, False) for p in nofsync_patterns if p]
    try:
        for pi, (pattern, mda_fsync) in enumerate(plan):
            sc = M.Scenario(pattern, 100 + pi, n_msgs=8, mda_fsync=mda_fsync)
            if not mda_fsync:
                pattern += "/mda-nofsync"
            dry = run(f"{pattern} no cut", sc, "none")
            events = dry["stats"]["events"]
            nsync = dry["stats"]["syncs"]
            nwrite = dry["stats"]["writes"]
            first = (first_event(events, from_event) or nsync + 1) if from_event else 1
            for n in range(first, nsync + 1):
                how = "recover" if n % 2 else "login"
                run(f"{pattern} sync {n}/{nsync} ({events[n - 1]}) {how}", sc, f"sync:{n}",
                    how=how)
                if subsets:
                    run(f"{pattern} sync {n}/{nsync} ({events[n - 1]}) subset", sc,
                        f"sync:{n}", variant="subset", rng=n, how=how)
            for rng in range(ends):
                run(f"{pattern} after the end, subset {rng}", sc, "none", variant="subset",
                    rng=rng, how="login", after=rng == 1)
            r = random.Random(pi)
            # every change cut, when random_writes < 0
            plan_w = range(1, nwrite + 1) if random_writes < 0 else \
                [r.randint(1, nwrite) for _ in range(random_writes)]
            for k, w in enumerate(plan_w):
                run(f"{pattern} write {w}/{nwrite} subset", sc, f"write:{w}", variant="subset",
                    rng=w, how=("recover", "login")[k % 2], after=k % 3 == 0)
                if random_writes < 0:   # and everything issued before the cut kept
                    run(f"{pattern} write {w}/{nwrite} all", sc, f"write:{w}", variant="all",
                        how=("login", "recover")[k % 2])
            if recovery and mda_fsync and pattern in ("every_other", "random"):
                # the power fails at the first fsync of new/ or cur/ after the
                # journal's (the unlinks, some durable in a subset image), then
                # again at each durability event of the recovery
                j = first_event(events, M.JOURNAL)
                mid = None
                if j is not None:
                    rest = first_event([e if i >= j else "" for i, e in enumerate(events, 1)],
                                       f"/{M.USER}/cur") or \
                        first_event([e if i >= j else "" for i, e in enumerate(events, 1)],
                                    f"/{M.USER}/new")
                    mid = rest
                if mid is None:
                    failures.append(f"{pattern}: no journal fsync followed by a fsync of new/ "
                                    f"or cur/ among {events}")
                    print(f"{tag} {failures[-1]}")
                    continue
                probe = run(f"{pattern} recovery probe", sc, f"sync:{mid}", cut_recovery="none")
                rsync = probe["rstats"]["syncs"]
                if not probe["journal"]:
                    failures.append(f"{pattern}: no journal to recover after sync {mid} "
                                    f"({events[mid - 1]})")
                    print(f"{tag} {failures[-1]}")
                run(f"{pattern} sync {mid}, messages moved by another client before the "
                    "recovery", sc, f"sync:{mid}", moves=True, how="login")
                for rn in range(1, rsync + 1):
                    for variant in recovery_variants:
                        run(f"{pattern} sync {mid}, recovery sync {rn}/{rsync} "
                            f"({probe['rstats']['events'][rn - 1]}) {variant}", sc,
                            f"sync:{mid}", cut_recovery=f"sync:{rn}", variant=variant, rng=rn)
    except Stop:
        pass
    return verdicts, failures


def stress(trials, seed, binary, quota=True):
    """Random trials: a deletion pattern, a Maildir, an MDA that fsyncs (or, one
    time in five, does not), a cut (a durability event or a write, sometimes
    none), the strict image or a random subset, sometimes a second cut during
    the recovery, mail delivered after the reboot, messages moved or flagged
    by another client before the recovery, --recover or the next login."""
    work = L.P.tmpdir("powercut-maildir-stress")
    master = random.Random(seed)
    verdicts = []
    start = time.time()
    for t in range(trials):
        rng = random.Random(master.random())
        sc = M.Scenario(rng.choice(M.PATTERNS), rng.random(), n_msgs=rng.randint(4, 16),
                        mda_fsync=rng.random() >= 0.2)
        r = rng.random()
        # a session makes about 8 durability events and 15 changes (the MDA's too)
        cut = ("none" if r < 0.1 else f"sync:{rng.randint(1, 9)}" if r < 0.6
               else f"write:{rng.randint(1, 18)}")
        variant = rng.choice(("strict", "subset", "subset", "all"))
        cut_recovery = f"sync:{rng.randint(1, 5)}" if rng.random() < 0.2 else None
        v = M.trial(work, sc, cut, variant=variant, rng=rng.randint(0, 1 << 30), binary=binary,
                    how=rng.choice(("recover", "login")), after=rng.random() < 0.3,
                    cut_recovery=cut_recovery, moves=rng.random() < 0.2)
        verdicts.append(v)
        if M.bad(v, quota):
            print(f"trial {t}: {sc.pattern} n={len(sc.original)} mda_fsync={sc.mda_fsync} "
                  f"cut {cut} {variant} recovery cut {cut_recovery}: {M.describe(v)}", flush=True)
        if (t + 1) % 100 == 0:
            print(f"... {t + 1} trials, {time.time() - start:.0f} s", flush=True)
    cut_short = sum(1 for v in verdicts if v["stats"]["cut"])
    journals = sum(1 for v in verdicts if v["journal"])
    print(f"({cut_short} trials had the power cut during the session, {journals} left a journal "
          f"to recover; {time.time() - start:.0f} s)")
    print(M.summary(trials, verdicts))
    return 1 if any(M.bad(v, quota) for v in verdicts) else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("walk", "stress"))
    ap.add_argument("trials", nargs="?", type=int, default=1000)
    ap.add_argument("seed", nargs="?", type=int, default=1)
    ap.add_argument("--binary")
    ap.add_argument("--patterns", default=",".join(M.PATTERNS))
    ap.add_argument("--nofsync-patterns", default="every_other,first")
    ap.add_argument("--random-writes", type=int, default=4,
                    help="write cuts per pattern (-1: every write)")
    ap.add_argument("--recovery", action="store_true", help="cut recoveries too")
    ap.add_argument("--ignore-sync", metavar="RE", help="pcfs: these fsyncs make nothing durable")
    ap.add_argument("--expect-failure", action="store_true")
    ap.add_argument("--quota-drift-ok", action="store_true",
                    help="a maildirsize off after a cut is counted, not a failure")
    args = ap.parse_args()
    why = L.fuse_usable()
    if why:
        print(f"skipped: {why}")
        return 77
    binary = args.binary or L.P.POP3D
    if args.mode == "stress":
        return stress(args.trials, args.seed, binary, not args.quota_drift_ok)
    start = time.time()
    verdicts, failures = walk(binary, args.patterns.split(","),
                              args.nofsync_patterns.split(","), args.random_writes,
                              args.recovery, stop_at_first=args.expect_failure,
                              tag="caught" if args.expect_failure else "FAIL",
                              ignore_sync=args.ignore_sync)
    print(M.summary(len(verdicts), verdicts) + f" ({time.time() - start:.0f} s)")
    if args.expect_failure:
        if not failures:
            print("the walk caught nothing")
        return 0 if failures else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
