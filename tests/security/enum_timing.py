"""No user enumeration: a failed login for an unknown user and one for a known
user with a wrong password get identical answers, and take the same time.

    python3 tests/security/enum_timing.py --check [-n ATTEMPTS]
    python3 tests/security/enum_timing.py [-n ATTEMPTS] [--passwd FILE --user NAME]
                                          [--system USER]

Each session makes two failed logins (the third would close it): one with an
unknown name and one with a known name and a wrong password, in alternating
order, each timed from sending PASS to the answer (--login-delay 0, so the
deliberate delay after a failure does not hide anything).

--check (tests/security/enumeration.sh, in make check) asserts it where the
hashes differ in cost, which is where it used to fail: the unknown user's
dummy hash costs one kind's crypt(3) (yescrypt here, about 20 ms), the known
user's hash another's (sha512crypt about 2 ms). Known users of three kinds,
$y$ yescrypt, $6$ sha512crypt and $5$ sha256crypt at their default costs,
take turns:
  - in a --passwd file (the yescrypt line first: it is the dummy), and
  - as root, in /etc/shadow: temporary system accounts made with useradd
    (named p3tPIDk, GECOS "pop3d enum_timing test"), removed at the end, and
    any such account of a run that is gone removed at the start.
For each, ATTEMPTS (default 200) failed logins of each kind: the medians must
be within 1 ms and a Mann-Whitney U test must not separate the two
(p > 0.01); a third of the known users' hashes being cheaper would move both.
Each hash kind's own figures (some 67 samples) are printed, not asserted.
A measurement that fails is taken again once and must pass then: a true
difference fails both, while a rank test at 0.01 alone would fail one run in
a hundred by chance. Sessions run three at a time, each pop3d in a session
(autogroup) of its own as a front end starts it, so the run takes about 30 s.

Without --check: the virtual users of tests/scripts/passwd (known user
"alice"), or --system USER, an existing system account with a password (as
root); both distributions are printed and only the answers are asserted.
"""
import argparse
import atexit
import itertools
import math
import os
import pwd
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

MEDIAN_LIMIT_MS = 1.0
P_LIMIT = 0.01
STREAMS = 3                 # sessions measured at once (the floor is mostly a sleep)
GECOS = "pop3d enum_timing test"
PASSWORD = "the-right-one"  # of every known user; never sent


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="attempts of each kind (default 200)")
    ap.add_argument("--check", action="store_true",
                    help="mixed hash kinds, --passwd and /etc/shadow; assert the timing")
    ap.add_argument("--passwd", default=P.PASSWD, help="virtual users file")
    ap.add_argument("--user", default=P.USER, help="a known virtual user")
    ap.add_argument("--system", metavar="USER", help="measure system accounts, known USER")
    return ap.parse_args()


class Session:
    """A pop3d on pipes that stays in AUTHORIZATION."""

    def __init__(self, cmd):
        # A session of its own, as a front end starts pop3d: not in the client's
        # scheduling group (autogroup), whose CPU time would then be charged
        # to the client's own wake-ups.
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  start_new_session=True)
        self.greeting = self.p.stdout.readline()

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\r\n")
        self.p.stdin.flush()

    def attempt(self, user, password):
        """(answer to USER, answer to PASS, seconds from PASS to its answer)."""
        self.send(f"USER {user}")
        user_answer = self.p.stdout.readline()
        started = time.perf_counter()
        self.send(f"PASS {password}")
        answer = self.p.stdout.readline()
        return user_answer, answer, time.perf_counter() - started

    def close(self):
        self.send("QUIT")
        self.p.stdin.close()
        self.p.stdout.read()
        self.p.wait(timeout=30)


def pop3d_command(d, passwd=None):
    cmd = [P.POP3D, "--mailbox", os.path.join(d, "%u.mbox"), "--log", os.path.join(d, "log"),
           "--login-delay", "0", "--state-dir", "none"]
    if passwd:
        cmd += ["--passwd", passwd, *P.root_args()]
    return cmd


def measure(cmd, known, n, streams=1, seed=1939):
    """n sessions, each one failed login of each kind; known: [(label, name)],
    taking turns. Returns one record per session:
    (label, unknown seconds, wrong-password seconds, the answers)."""
    rng = random.Random(seed)
    plan = []
    for i in range(n):
        label, name = known[(i // 2) % len(known)]
        kinds = ["unknown", "wrong"] if i % 2 == 0 else ["wrong", "unknown"]
        users = {"unknown": f"nosuchuser{rng.randrange(10**9)}", "wrong": name}
        plan.append((label, [(k, users[k], f"wrong-{rng.randrange(10**9)}") for k in kinds]))
    records = [None] * n
    counter = itertools.count()
    problems = []

    def worker():
        try:
            for i in iter(lambda: next(counter), None):
                if i >= n:
                    return
                label, attempts = plan[i]
                s = Session(cmd)
                secs, answers = {}, set()
                for kind, user, password in attempts:
                    user_answer, answer, t = s.attempt(user, password)
                    secs[kind] = t
                    answers.add((user_answer, answer))
                s.close()
                records[i] = (label, secs["unknown"], secs["wrong"], answers)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            problems.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, problems
    return records


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def mann_whitney(a, b):
    """Two-sided Mann-Whitney U test, normal approximation: (U, z, p)."""
    both = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(both)
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and both[j + 1][0] == both[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, both) if g == 0)
    n1, n2 = len(a), len(b)
    u = r1 - n1 * (n1 + 1) / 2
    mu, sigma = n1 * n2 / 2, math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    z = (u - mu) / sigma if sigma else 0.0
    return u, z, math.erfc(abs(z) / math.sqrt(2))


def histogram(times, width=50, bins=12):
    allv = [x for v in times.values() for x in v]
    lo, hi = pct(allv, 1), pct(allv, 99)
    step = (hi - lo) / bins or 1e-9
    counts = {k: [0] * bins for k in times}
    for k, v in times.items():
        for x in v:
            counts[k][min(bins - 1, max(0, int((x - lo) / step)))] += 1
    top = max(max(c) for c in counts.values()) or 1
    marks = {"unknown user": "u", "wrong password": "w"}
    lines = []
    for b in range(bins):
        edge = (lo + b * step) * 1000
        bars = "".join(f" {marks[k]}:{counts[k][b]:4d} {'#' * round(width / 2 * counts[k][b] / top):<{width // 2}}"
                       for k in times)
        lines.append(f"  {edge:8.3f} ms{bars}")
    return lines


def describe(title, records, show_histogram=True):
    """Print the distributions; return the problems found (empty: indistinguishable)."""
    times = {"unknown user": [r[1] for r in records], "wrong password": [r[2] for r in records]}
    print(f"{title}: {len(records)} failed logins of each kind"
          f" ({os.path.relpath(P.POP3D, P.ROOT)}, --login-delay 0); milliseconds from PASS to its answer")
    print(f"  {'':22s} {'n':>5s} {'min':>8s} {'p10':>8s} {'median':>8s} {'p90':>8s} {'max':>8s}"
          f" {'mean':>8s} {'stdev':>8s}")
    rows = [("unknown user", times["unknown user"]), ("wrong password", times["wrong password"])]
    labels = sorted({r[0] for r in records})
    if len(labels) > 1:
        rows += [(f"  wrong, {label}", [r[2] for r in records if r[0] == label]) for label in labels]
    for kind, v in rows:
        ms = [x * 1000 for x in v]
        print(f"  {kind:22s} {len(ms):5d} {min(ms):8.3f} {pct(ms, 10):8.3f} {pct(ms, 50):8.3f}"
              f" {pct(ms, 90):8.3f} {max(ms):8.3f} {statistics.mean(ms):8.3f}"
              f" {statistics.pstdev(ms):8.3f}")
    problems = []
    a, b = times["unknown user"], times["wrong password"]
    dmed = (pct(a, 50) - pct(b, 50)) * 1000
    u, z, p = mann_whitney(a, b)
    print(f"  median difference {dmed:+.3f} ms; Mann-Whitney U={u:.0f} z={z:+.2f} p={p:.3f}")
    if abs(dmed) >= MEDIAN_LIMIT_MS:
        problems.append(f"medians {dmed:+.3f} ms apart")
    if p <= P_LIMIT:
        problems.append(f"the rank test separates them (z={z:+.2f}, p={p:.4f})")
    for label in labels if len(labels) > 1 else []:
        w = [r[2] for r in records if r[0] == label]
        d = (pct(a, 50) - pct(w, 50)) * 1000
        _, zk, pk = mann_whitney(a, w)
        print(f"  {label}: median difference {d:+.3f} ms; z={zk:+.2f} p={pk:.3f}")
    if show_histogram:
        print("  distribution (u = unknown user, w = wrong password):")
        print("\n".join(histogram(times)))
    return problems


def check_answers(records):
    """The answers must not tell the two apart."""
    answers = set().union(*(r[3] for r in records))
    assert len(answers) == 1, f"answers differ: {sorted(answers)}"
    (ua, pa), = answers
    print(f"  identical answers: USER {ua!r}, PASS {pa!r}")


def verdict(title, run):
    """run() measures; a measurement that fails is taken once more (see the docstring)."""
    records = run()
    check_answers(records)
    problems = describe(title, records)
    if not problems:
        return []
    print(f"  {title}: {'; '.join(problems)}: measuring again")
    records = run()
    check_answers(records)
    again = describe(f"{title}, again", records)
    return [f"{title}: {'; '.join(again)}"] if again else []


# ---- hashes at their default costs ----

def make_hashes(d):
    """{label: hash of PASSWORD}: pop3d --hash (libcrypt's preferred: yescrypt),
    openssl passwd for sha512crypt and sha256crypt."""
    r = subprocess.run([P.POP3D, "--hash"], input=PASSWORD + "\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    hashes = {"$y$ yescrypt": r.stdout.strip()}
    assert hashes["$y$ yescrypt"].startswith("$y$"), hashes
    for flag, label in (("-6", "$6$ sha512crypt"), ("-5", "$5$ sha256crypt")):
        r = subprocess.run(["openssl", "passwd", flag, "-stdin"], input=PASSWORD + "\n",
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        hashes[label] = r.stdout.strip()
        assert hashes[label].startswith(label[:3]), hashes
    return hashes


def virtual_setup(d, hashes):
    """A --passwd file with one user of each kind, the yescrypt one first."""
    passwd = os.path.join(d, "passwd")
    known = []
    with open(passwd, "w") as f:
        for i, (label, h) in enumerate(hashes.items()):
            name = f"user{i}"
            f.write(f"{name}:{h}\n")
            known.append((label, name))
    os.chmod(passwd, 0o644)
    return passwd, known


# ---- temporary system accounts (as root) ----

def account_pid(name):
    """The pid in a name this test made (p3tPIDk), or None."""
    if not name.startswith("p3t") or not name[3:-1].isdigit():
        return None
    return int(name[3:-1])


def shadow_tool(args, check=True):
    """useradd/userdel, again while another process holds the lock of
    /etc/passwd or /etc/group (exit status 1 or 10: a parallel test run, an
    admin); True when it worked."""
    deadline = time.monotonic() + 30
    while True:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return True
        if r.returncode not in (1, 10) or time.monotonic() > deadline:
            assert not check, f"{' '.join(args)}: {r.returncode} {r.stderr}"
            return False
        time.sleep(0.2)


def remove_account(name):
    shadow_tool(["userdel", name], check=False)


def remove_stale_accounts():
    """Accounts of an earlier run of this test that did not get to remove them."""
    for pw in pwd.getpwall():
        pid = account_pid(pw.pw_name)
        if pid is None or pw.pw_gecos != GECOS or pid == os.getpid():
            continue
        if not os.path.exists(f"/proc/{pid}"):
            remove_account(pw.pw_name)


def system_setup(hashes):
    """One system account of each kind, its hash in /etc/shadow; removed at exit."""
    remove_stale_accounts()
    known = []
    for label, h in hashes.items():
        name = f"p3t{os.getpid()}{label[1]}"
        atexit.register(remove_account, name)
        shadow_tool(["useradd", "--system", "--no-create-home", "--no-user-group",
                     "--gid", "nogroup", "--shell", "/usr/sbin/nologin",
                     "--comment", GECOS, "--password", h, name])
        assert pwd.getpwnam(name).pw_passwd == "x", name   # the hash is in /etc/shadow
        known.append((label, name))
    return known


def check(args):
    d = P.tmpdir("security-enum-timing")
    P.give_to_server(d)
    hashes = make_hashes(d)
    passwd, known = virtual_setup(d, hashes)
    problems = verdict("virtual users, mixed hashes",
                       lambda: measure(pop3d_command(d, passwd), known, args.n, STREAMS))
    if P.as_root():
        # atexit does not run on SIGTERM: make it an exit.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        known = system_setup(hashes)
        problems += verdict("system accounts, mixed hashes in /etc/shadow",
                            lambda: measure(pop3d_command(d), known, args.n, STREAMS))
    else:
        print("skipped the /etc/shadow part: needs root (pop3d reads /etc/shadow as root)")
    assert not problems, "\n".join(problems)
    print("ok: unknown user and wrong password indistinguishable, mixed hash kinds")


def main():
    args = parse_args()
    if args.check:
        check(args)
        return
    d = P.tmpdir("security-enum-timing")
    P.give_to_server(d)
    if args.system:
        cmd, known = pop3d_command(d), [("system", args.system)]
    else:
        cmd, known = pop3d_command(d, args.passwd), [("virtual", args.user)]
    records = measure(cmd, known, args.n)
    describe("system accounts" if args.system else "virtual users", records)
    check_answers(records)


if __name__ == "__main__":
    main()
