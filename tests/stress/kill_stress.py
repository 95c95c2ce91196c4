"""Crash stress: N trials (default 1000), each a session that deletes messages
and is SIGKILLed during its update — half at a chosen step inside the update
(the fault build), half from outside at a random instant after QUIT — with
mail delivered during the session and after the crash. Prints
`N trials, N lost, N duplicated` (messages, over all trials).

    make pop3d tests/pop3d-fault && python3 tests/stress/kill_stress.py 1000
"""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import crashlib as C  # noqa: E402
import pop3lib as P  # noqa: E402

trials = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
d = P.tmpdir("kill-stress")
master = random.Random(seed)
lost_total = dup_total = killed_total = bad_trials = 0
for t in range(trials):
    rng = random.Random(master.random())
    big = rng.choice([0, 300_000, 1_500_000])
    if rng.random() < 0.5:
        lost, dup, ok, killed, _ = C.trial(d, rng, kill_step=rng.randint(1, 30), big=big,
                                           n_msgs=rng.randint(5, 40))
    else:
        lost, dup, ok, killed, _ = C.trial(d, rng, kill_after=rng.uniform(0, 0.03), big=big,
                                           n_msgs=rng.randint(5, 40))
    lost_total += lost
    dup_total += dup
    killed_total += killed
    if not ok:
        bad_trials += 1
        print(f"trial {t}: lost {lost}, duplicated {dup}", flush=True)
    if (t + 1) % 100 == 0:
        print(f"... {t + 1} trials, {killed_total} killed mid-update", flush=True)
print(f"{trials} trials, {lost_total} lost, {dup_total} duplicated "
      f"({killed_total} killed before the update finished)")
sys.exit(1 if bad_trials else 0)
