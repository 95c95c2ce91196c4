"""No user enumeration: a failed login for an unknown user and one for a known
user with a wrong password get identical answers, and take the same time.

    python3 tests/security/enum_timing.py [-n ATTEMPTS] [--passwd FILE --user NAME]
                                          [--system USER]

Each session makes two failed logins (the third would close it): one with an
unknown name and one with a known name and a wrong password, in alternating
order, each timed from sending PASS to the answer (--login-delay 0, so the
deliberate delay after a failure does not hide anything). Prints both
distributions and how far apart they are; asserts only that the answers
are byte-identical. Timing is printed, never asserted: it depends on the
machine.

By default the virtual users of tests/scripts/passwd are used (known user
"alice"). --system USER measures system accounts instead (as root: pop3d
reads /etc/shadow), with USER an existing account that has a password.
"""
import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="attempts of each kind (default 200)")
    ap.add_argument("--passwd", default=P.PASSWD, help="virtual users file")
    ap.add_argument("--user", default=P.USER, help="a known virtual user")
    ap.add_argument("--system", metavar="USER", help="measure system accounts, known USER")
    return ap.parse_args()


class Session:
    """A pop3d on pipes that stays in AUTHORIZATION."""

    def __init__(self, args, d):
        opts = ["--mailbox", os.path.join(d, "%u.mbox"), "--log", os.path.join(d, "log"),
                "--login-delay", "0", "--state-dir", "none"]
        if args.system:
            cmd = [P.POP3D, *opts]
        else:
            cmd = [P.POP3D, "--passwd", args.passwd, *opts, *P.root_args()]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
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


def measure(args, d):
    known = args.system or args.user
    times = {"unknown user": [], "wrong password": []}
    answers = {"unknown user": set(), "wrong password": set()}
    rng = random.Random(1939)
    for i in range(args.n):
        s = Session(args, d)
        kinds = ["unknown user", "wrong password"]
        if i % 2:
            kinds.reverse()   # neither kind always comes first in a session
        for kind in kinds:
            user = f"nosuchuser{rng.randrange(10**9)}" if kind == "unknown user" else known
            password = f"wrong-{rng.randrange(10**9)}"
            user_answer, answer, secs = s.attempt(user, password)
            times[kind].append(secs)
            answers[kind].add((user_answer, answer))
        s.close()
    return times, answers


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


def main():
    args = parse_args()
    d = P.tmpdir("security-enum-timing")
    P.give_to_server(d)
    times, answers = measure(args, d)
    print(f"failed logins, {args.n} of each kind, {'system accounts' if args.system else 'virtual users'}"
          f" ({os.path.relpath(P.POP3D, P.ROOT)}, --login-delay 0); milliseconds from PASS to its answer")
    print(f"  {'':16s} {'n':>5s} {'min':>8s} {'p10':>8s} {'median':>8s} {'p90':>8s} {'max':>8s}"
          f" {'mean':>8s} {'stdev':>8s}")
    for kind, v in times.items():
        ms = [x * 1000 for x in v]
        print(f"  {kind:16s} {len(ms):5d} {min(ms):8.3f} {pct(ms, 10):8.3f} {pct(ms, 50):8.3f}"
              f" {pct(ms, 90):8.3f} {max(ms):8.3f} {statistics.mean(ms):8.3f}"
              f" {statistics.pstdev(ms):8.3f}")
    a, b = times["unknown user"], times["wrong password"]
    dmed = (pct(a, 50) - pct(b, 50)) * 1000
    spread = (pct(b, 75) - pct(b, 25)) * 1000
    u, z, p = mann_whitney(a, b)
    print(f"  median difference {dmed:+.3f} ms (interquartile range {spread:.3f} ms);"
          f" Mann-Whitney U={u:.0f} z={z:+.2f} p={p:.3f}")
    print("  distribution (u = unknown user, w = wrong password):")
    print("\n".join(histogram(times)))

    # The answers must not tell the two apart.
    assert len(answers["unknown user"]) == 1 and len(answers["wrong password"]) == 1, answers
    (ua,), (wa,) = answers["unknown user"], answers["wrong password"]
    assert ua == wa, f"answers differ: {ua!r} vs {wa!r}"
    print(f"  identical answers: USER {ua[0]!r}, PASS {ua[1]!r}")


if __name__ == "__main__":
    main()
