"""A distributed password guesser against pop3d's cross-session throttling
(issue 11), printing figures; not a pass/fail test and not run by make check.

    python3 tests/stress/guesser.py [--minutes 10] [--parallel 16] [--sources 1000]

For the given time, PARALLEL sessions at a time, each from the next of SOURCES
addresses (REMOTE_HOST with stdin a pipe, as stunnel's exec gives them), guess
alice's password; a guesser hangs up after --give-up seconds in line and tries
again from the next address. Meanwhile the owner logs in from a known source
every 10 s and a fresh account (bob, from an address never seen) every 10 s.
Prints the password checks per hour against alice (from the log), the owner's
and the fresh account's login latency (median, max), and the state file's size
(before and after). The server runs with its default throttle options (extra
pop3d options after --)."""
import argparse
import os
import shutil
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--minutes", type=float, default=10)
ap.add_argument("--parallel", type=int, default=16)
ap.add_argument("--sources", type=int, default=1000)
ap.add_argument("--give-up", type=float, default=30, help="seconds a guesser waits in line")
ap.add_argument("pop3d_args", nargs="*")
args = ap.parse_args()

d = P.tmpdir("guesser")
state = os.path.join(P.ROOT, "tests", "tmp", "guesser-state")
shutil.rmtree(state, ignore_errors=True)
log = os.path.join(d, "pop3d.log")
if os.path.exists(log):
    os.unlink(log)
P.give_to_server(d)
CMD = [P.POP3D, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"), "--log", log,
       "--state-dir", state, *P.root_args(), *args.pop3d_args]
SOURCES = [f"10.{20 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(args.sources)]
OWNER_SRC = "192.0.2.10"


def session(user, password, source, give_up=None):
    """(PASS answer, seconds from PASS to the answer)."""
    return P.timed_login(CMD, user, password, source, give_up)


def table_size():
    try:
        return os.path.getsize(os.path.join(state, "throttle"))
    except OSError:
        return None


ans, _ = session(P.USER, P.PASSWORD, OWNER_SRC)   # the owner's home address becomes known
assert ans.startswith(b"+OK"), ans
size_before = table_size()
stop = time.monotonic() + args.minutes * 60
counter = [0]
lock = threading.Lock()


def guesser():
    while time.monotonic() < stop:
        with lock:
            i = counter[0]
            counter[0] += 1
        session(P.USER, f"guess-{i}", SOURCES[i % len(SOURCES)], give_up=args.give_up)


threads = [threading.Thread(target=guesser, daemon=True) for _ in range(args.parallel)]
start = time.monotonic()
for t in threads:
    t.start()
owner, fresh, n = [], [], 0
while time.monotonic() < stop:
    ans, took = session(P.USER, P.PASSWORD, OWNER_SRC)
    owner.append((ans.startswith(b"+OK"), took))
    ans, took = session("bob", "correct horse", f"198.51.{n // 256 % 256}.{n % 256}")
    fresh.append((ans.startswith(b"+OK"), took))
    n += 1
    time.sleep(10)
elapsed = time.monotonic() - start
for t in threads:
    t.join(timeout=args.give_up + 60)
with open(log) as f:
    lines = f.readlines()
import datetime  # noqa: E402
check_times = [datetime.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%SZ").timestamp()
               for l in lines if f"login failed for {P.USER}: wrong password" in l]
checks = len(check_times)
throttled = sum(1 for l in lines if f"authentication throttled: user={P.USER} " in l)


def stats(xs):
    ok = sum(1 for good, _ in xs if good)
    t = [took for _, took in xs]
    return f"{ok}/{len(xs)} logged in, median {statistics.median(t):.3f} s, max {max(t):.3f} s"


print(f"guessing for {elapsed / 60:.1f} min: {args.parallel} parallel sessions from "
      f"{min(counter[0], len(SOURCES))} of {len(SOURCES)} source addresses, "
      f"{counter[0]} sessions")
print(f"password checks against {P.USER}: {checks} in {elapsed / 60:.1f} min "
      f"({checks * 3600 / elapsed:.0f} per hour at this run's average); "
      f"{throttled} throttled attempts logged")
# The delay climbs to its cap in the first minutes; after that the rate is steady.
if check_times and elapsed > 360:
    t0 = check_times[0]
    late = [t for t in check_times if t >= t0 + 180]
    span = check_times[0] + elapsed - (t0 + 180)
    steady = len(late) * 3600 / span
    print(f"after the first 3 min: {len(late)} checks in {span / 60:.1f} min = "
          f"{steady:.0f} per hour; projected first hour: "
          f"{len([t for t in check_times if t < t0 + 180]) + steady * (3600 - 180) / 3600:.0f}")
print(f"owner from a known source: {stats(owner)}")
print(f"fresh account from new addresses: {stats(fresh)}")
print(f"state file: {size_before} octets before, {table_size()} after")
