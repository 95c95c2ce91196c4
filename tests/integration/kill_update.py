"""SIGKILL at every step of the update at QUIT (and at every step of a
recovery interrupted in turn), with mail delivered during the session and
after the crash: after recovery, every message that was not deleted is there
exactly once and byte-identical, and the deleted ones are all gone or all back."""
import os
import random
import shutil
import sys

import crashlib as C
import pop3lib as P

d = P.tmpdir("kill-update")
points = 0
failures = []
# Count the steps of one update: kill at increasing steps until one completes.
step = 1
while True:
    rng = random.Random(step)
    lost, dup, ok, killed, _ = C.trial(d, rng, kill_step=step, big=2_500_000)
    if not ok:
        failures.append(f"update step {step}: lost {lost}, duplicated {dup}")
    if not killed:
        break
    points += 1
    step += 1
update_steps = step - 1
# Recovery itself killed at each of its steps, after a crash in the middle of
# the move into the mailbox (a fixed plan, so the step numbers mean the same).
def count_update_steps(seed):
    n = 1
    while C.trial(d, random.Random(seed), kill_step=n, big=2_500_000)[3]:
        n += 1
    return n - 1

recovery_points = 0
for seed in (77, 78):
    ustep = count_update_steps(seed) - 8   # a chunk of the move (the tail has 5 steps)
    rstep = 1
    while True:
        lost, dup, ok, killed, rkilled = C.trial(d, random.Random(seed), kill_step=ustep,
                                                 kill_recover_step=rstep, big=2_500_000)
        assert killed, "the update was not killed"
        if not ok:
            failures.append(f"seed {seed} update step {ustep}, recovery step {rstep}: "
                            f"lost {lost}, duplicated {dup}")
        if not rkilled:
            break
        recovery_points += 1
        rstep += 1
points += recovery_points
# The same with --journal-dir (journals outside the spool): the session writes
# the journal there, --recover given the same directory finishes it.
jdir = P.tmpdir("kill-update-journals")
shutil.rmtree(jdir, ignore_errors=True)   # pop3d makes JOURNAL_DIR/UID in it
os.makedirs(jdir)
P.give_to_server(jdir)
jdir_points = 0
for jstep in range(2, update_steps, 4):
    lost, dup, ok, killed, _ = C.trial(d, random.Random(jstep), kill_step=jstep,
                                       big=2_500_000, jdir=jdir)
    if not ok:
        failures.append(f"--journal-dir, update step {jstep}: lost {lost}, duplicated {dup}")
    jdir_points += killed
assert jdir_points > 0, "no update was killed with --journal-dir"
points += jdir_points
print(f"{points} kill points ({update_steps} in the update, {recovery_points} in recovery, "
      f"{jdir_points} with --journal-dir), {len(failures)} failed")
for f in failures:
    print("  " + f)
assert points >= 50, "fewer than 50 kill points"
sys.exit(1 if failures else 0)
