"""Failed logins across sessions (--state-dir, issue 11): a guesser running 8
sessions in parallel from 200 source addresses (REMOTE_HOST with stdin a pipe,
as stunnel's exec gives them) against one account for a bounded time. The
password checks against it, counted from the log ("login failed for alice:
wrong password"), stay within what the capped per-account delay allows; the
owner, from a source known for the account, logs in meanwhile with no added
delay, and another account is not slowed. Then, under throttling, an unknown
account and a wrong password get the same answers after the same delays.

Small delay options: --throttle-base 1 --throttle-cap 2."""
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

DURATION = 20      # seconds of guessing
PARALLEL = 8
SOURCES = [f"10.11.{i // 100}.{i % 100 + 1}" for i in range(200)]
BASE, CAP = 1, 2
OWNER_SRC, OTHER_SRC = "192.0.2.10", "198.51.100.5"
BOB_PASSWORD = "correct horse"

d = P.tmpdir("throttle")
state = os.path.join(P.ROOT, "tests", "tmp", "throttle-state")   # not under d: d goes to nobody
shutil.rmtree(state, ignore_errors=True)
log = os.path.join(d, "pop3d.log")
if os.path.exists(log):
    os.unlink(log)
P.give_to_server(d)
ARGS = [P.POP3D, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"), "--log", log,
        "--login-delay", "0", "--state-dir", state, "--throttle-base", str(BASE),
        "--throttle-cap", str(CAP), "--timeout", "60", *P.root_args()]
procs = set()
procs_lock = threading.Lock()


def session(user, password, source, give_up=None):
    """One session: USER, PASS, QUIT. (the PASS answer, seconds from PASS to it)."""
    return P.timed_login(ARGS, user, password, source, give_up, (procs, procs_lock))


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        with open(log) as f:
            sys.stdout.write("".join(f.readlines()[-30:]))
        sys.exit(1)


def wrong_checks(user):
    with open(log) as f:
        return sum(1 for l in f if f"login failed for {user}: wrong password" in l)


# The owner logs in once from home: that source is now known for alice.
ans, base_latency = session(P.USER, P.PASSWORD, OWNER_SRC)
check(ans.startswith(b"+OK"), f"owner's first login: {ans!r}")

stop = time.monotonic() + DURATION
counter = [0]


def guesser():
    while time.monotonic() < stop:
        with procs_lock:
            i = counter[0]
            counter[0] += 1
        try:
            # An impatient guesser: hangs up after 3 s in line, tries again from elsewhere.
            session(P.USER, f"guess{i}", SOURCES[i % len(SOURCES)], give_up=3)
        except (OSError, ValueError):
            pass   # killed at the end


threads = [threading.Thread(target=guesser, daemon=True) for _ in range(PARALLEL)]
start = time.monotonic()
for t in threads:
    t.start()
owner, other = [], []
time.sleep(2)
while time.monotonic() < stop - 1:
    ans, took = session(P.USER, P.PASSWORD, OWNER_SRC)
    check(ans.startswith(b"+OK"), f"owner during the attack: {ans!r}")
    owner.append(took)
    ans, took = session("bob", BOB_PASSWORD, OTHER_SRC)
    other.append((ans, took))
    time.sleep(1)
while time.monotonic() < stop:
    time.sleep(0.1)
elapsed = time.monotonic() - start
with procs_lock:
    for p in list(procs):   # sessions still held back: the server end goes with them
        p.kill()
for t in threads:
    t.join(timeout=30)

checks = wrong_checks(P.USER)
# Serialized, each check at least the delay after the last failure: 1 s, then 2 s.
bound = int(elapsed / CAP) + 3
print(f"{counter[0]} guessing sessions from {len(SOURCES)} sources in {elapsed:.1f} s: "
      f"{checks} password checks against {P.USER} (bound {bound})")
check(counter[0] >= PARALLEL, "the guesser did not run")
check(2 <= checks <= bound, f"{checks} password checks against {P.USER}, bound {bound}")
print(f"owner from a known source: {len(owner)} logins, max {max(owner):.3f} s "
      f"(before the attack {base_latency:.3f} s)")
check(owner and max(owner) < 0.9, f"the owner was slowed: {owner}")
bob_max = max(t for _, t in other)
print(f"another account meanwhile: {len(other)} logins, max {bob_max:.3f} s")
check(all(a.startswith(b"+OK") for a, _ in other), f"bob: {other}")
check(bob_max < 0.9, f"another account was slowed: {other}")
with open(log) as f:
    throttled = [l for l in f if "authentication throttled: user=alice peer=10.11." in l]
check(throttled and all(" delay=" in l for l in throttled), "throttled attempts are logged")
print(f"{len(throttled)} throttled attempts logged")

# Unknown account vs wrong password under throttling: same answers, same delays.
results = {}
for user in ("carol-is-unknown", "bob"):
    results[user] = [session(user, "nope", f"203.0.113.{i + 1 + (10 if user == 'bob' else 0)}")
                     for i in range(3)]
u, w = results["carol-is-unknown"], results["bob"]
print("unknown: " + ", ".join(f"{t:.2f}" for _, t in u) + " s; wrong password: " +
      ", ".join(f"{t:.2f}" for _, t in w) + " s")
check([a for a, _ in u] == [a for a, _ in w], f"answers differ: {u} {w}")
check(all(a.startswith(b"-ERR [AUTH]") for a, _ in u), f"answers: {u}")
check(all(abs(a[1] - b[1]) < 0.4 for a, b in zip(u, w)), "delays differ")
check(u[1][1] >= BASE - 0.2 and u[2][1] >= CAP - 0.2, f"not throttled: {u}")
# A correct password after the delay logs in (from a new source).
ans, took = session("bob", BOB_PASSWORD, "203.0.113.50")
print(f"bob's password from a new source after 3 failures: {ans.strip()!r} after {took:.2f} s")
check(ans.startswith(b"+OK") and took >= CAP - 0.2, f"{ans!r} after {took:.2f} s")
print("ok: password checks bounded under a distributed guesser; owner and another account "
      "not slowed; unknown user and wrong password alike under throttling")
