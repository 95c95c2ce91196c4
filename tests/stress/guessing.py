"""The guessing attacks of issue 18 at the shipped defaults (no throttle
options), for minutes each, with figures; root, not run by make check.

    python3 tests/stress/guessing.py [--minutes 10] [--attacks v4mapped,nat,...]
                                     [--flood-size 20000] [-- EXTRA-POP3D-OPTIONS]

Attacks (each against a pop3d configuration of its own: passwd, state dir, log):
  v4mapped    8 parallel guessers on alice, each session from a fresh
              ::ffff:203.0.113.X (PROXY v1 TCP6, v2 TCP6, REMOTE_HOST)
  ipv6        8 parallel guessers on alice, each session from another /64 of
              one IPv6 /48 (2001:db8:ab::/48)
  nat         12 parallel guessers on alice from 198.51.100.7, where alice logs in
  own         4 pairs alternating a wrong password for alice with the right one
              for mallory (the attacker's own account), from one address
  abandoned   12 parallel fire-and-forget guessers on alice from many addresses,
              hanging up 1 s after PASS
  bystanders  4 parallel guessers on alice from 192.0.2.77, a shared address
              where frank logged in before
  spraying    4 parallel sessions from 198.51.100.99 trying 40 account names
              (most nonexistent; alice logged in from there)
  flood       logins to FLOOD-SIZE account names from as many sources (IPv4
              and IPv6 /64s; every other one with a wrong password), as fast as
              32 parallel sessions go, while 4 guessers attack alice from fresh
              addresses

Meanwhile, every 5 s, the owner (alice, from 198.51.100.7 where she logged in
before, or from the NAT itself in "nat") and a bystander log in with their
correct passwords. Per attack: sessions, password checks counted in the log
(against alice; for spraying, the failed checks from the spraying source),
checks per hour projected from the run (the first bucket's worth, then the
rate measured after it), the owner's and the bystander's login times (median/max, and
how many were not +OK), processes of the attack alive 10 s after it stopped.
The table at the end is plain text for doc/throttle.md.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "security"))
import guesslib as G  # noqa: E402

PW = G.PASSWORDS
OWNER_HOME = "198.51.100.7"
FLOOD_PASSWORD = "flood"


def default_burst(which):
    """N of the shipped DEFAULT_THROTTLE_<which> "N/SECS" (limits.h)."""
    text = open(os.path.join(G.P.ROOT, "limits.h")).read()
    return int(re.search(rf'#define DEFAULT_THROTTLE_{which}\s+"(\d+)/', text).group(1))


class Times:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, answer, took):
        with self.lock:
            self.items.append((G.kind(answer), took))

    def cell(self):
        if not self.items:
            return "-"
        ts = [t for _, t in self.items]
        bad = {}
        for k, _ in self.items:
            if k != "+OK":
                bad[k] = bad.get(k, 0) + 1
        s = f"{statistics.median(ts):.2f}/{max(ts):.2f}"
        if bad:
            s += " (" + ", ".join(f"{n} {k}" for k, n in sorted(bad.items())) + ")"
        return s


def cheap_hash():
    """One sha256crypt hash for every flood account (verifying it is cheap)."""
    try:
        out = subprocess.run(["openssl", "passwd", "-5", "-salt", "floodsalt", FLOOD_PASSWORD],
                             stdout=subprocess.PIPE, check=True, timeout=30).stdout
        return out.decode().strip()
    except (OSError, subprocess.SubprocessError):
        return G.hashed(FLOOD_PASSWORD)


def flood_source(i):
    if i % 2:
        return f"10.{64 + i // 65536 % 64}.{i // 256 % 256}.{i % 256}"
    return f"2001:db8:{i // 65536 % 65536:x}:{i % 65536:x}::1"


def fresh_v4(i):
    return f"10.{128 + i // 65536 % 64}.{i // 256 % 256}.{i % 256}"


def run_attack(name, seconds, extra, flood_size):
    """One attack: returns a dict of figures."""
    throttle = list(extra)
    passwd_extra = None
    if name == "flood":
        h = cheap_hash()

        def passwd_extra(f):
            for i in range(flood_size):
                f.write(f"flood{i}:{h}\n")
    srv = G.Server(f"stress-{name}", throttle, login_delay=None, timeout=None,
                   extra=["--trusted-proxy", "127.0.0.1"] if name == "v4mapped" else [],
                   passwd_extra=passwd_extra)
    owner_src = OWNER_HOME
    first = srv.login("alice", PW["alice"], OWNER_HOME)
    if not first[0].startswith(b"+OK"):
        raise RuntimeError(f"alice's first login: {first[0]!r}\n{srv.tail()}")
    bystander = ("bob", "192.0.2.55", b"")   # user, source, PROXY header
    count = "login failed for alice:"
    parallel = 8
    n_threads = {"v4mapped": 8, "ipv6": 8, "nat": 12, "own": 4, "abandoned": 12, "bystanders": 4,
                 "spraying": 4, "flood": 36}[name]

    if name == "v4mapped":
        bystander = ("bob", "127.0.0.1", G.proxy_v1("::ffff:192.0.2.55", "::ffff:10.0.0.1"))

        def body(k, i):
            addr = f"::ffff:203.0.113.{i % 254 + 1}"
            form = i % 3
            if form == 0:
                srv.login("alice", f"guess{i}", "127.0.0.1",
                          header=G.proxy_v1(addr, "::ffff:10.0.0.1", 40000 + i % 20000))
            elif form == 1:
                srv.login("alice", f"guess{i}", "127.0.0.1",
                          header=G.proxy_v2(addr, "::ffff:10.0.0.1", 40000 + i % 20000))
            else:
                srv.login("alice", f"guess{i}", addr)
    elif name == "ipv6":
        def body(k, i):
            srv.login("alice", f"guess{i}", f"2001:db8:ab:{i % 65536:x}::{k + 1:x}")
    elif name == "nat":
        owner_src = OWNER_HOME          # the NAT is the owner's own address
        bystander = ("bob", OWNER_HOME, b"")   # new behind the NAT

        def body(k, i):
            srv.login("alice", f"guess{i}", OWNER_HOME)
    elif name == "own":
        def body(k, i):
            src = f"192.0.2.{33 + k}"
            srv.login("alice", f"guess{i}", src)
            srv.login("mallory", PW["mallory"], src)
    elif name == "abandoned":
        def body(k, i):
            srv.hang_up_after_pass("alice", f"guess{i}", fresh_v4(i), after=1.0)
            srv.reap()
    elif name == "bystanders":
        shared = "192.0.2.77"
        first = srv.login("frank", PW["frank"], shared)
        bystander = ("frank", shared, b"")   # known at the shared address

        def body(k, i):
            srv.login("alice", f"guess{i}", shared)
    elif name == "spraying":
        src = "198.51.100.99"
        owner_src = src
        srv.login("alice", PW["alice"], src)      # alice uses the sprayed address too
        names = ["carol", "dave", "frank", "mallory"] + [f"user{n:02d}" for n in range(36)]
        count = None

        def body(k, i):
            srv.login(names[i % len(names)], f"spray{i}", src)
    elif name == "flood":
        flooded = [0]

        def body(k, i):
            if k < 4:   # the guessers
                srv.login("alice", f"guess{i}", fresh_v4(i))
            else:       # the flood: a login per account name, per source
                j = flooded[0]
                flooded[0] += 1
                srv.login(f"flood{j % flood_size}", FLOOD_PASSWORD if j % 2 == 0 else "wrong",
                          flood_source(j))
    else:
        raise SystemExit(f"unknown attack {name}")

    owner, other = Times(), Times()
    threads, counter, t0 = G.parallel(n_threads, seconds, body)

    def reaper():
        while any(t.is_alive() for t in threads):
            srv.reap()
            time.sleep(0.5)
    threading.Thread(target=reaper, daemon=True).start()
    time.sleep(min(5, seconds / 4))
    while any(t.is_alive() for t in threads):
        owner.add(*srv.login("alice", PW["alice"], owner_src, wait=120))
        # Names of their own: the attack's body reads `src` of this function.
        b_user, b_src, b_hdr = bystander
        other.add(*srv.login(b_user, PW[b_user], b_src, header=b_hdr, wait=120))
        time.sleep(5 if seconds > 60 else 1)
    elapsed, ended = G.join(threads, t0, timeout=300)
    stopped = time.monotonic()
    while time.monotonic() - stopped < 10:
        srv.reap()
        time.sleep(0.2)
    left = len(srv.processes())
    if count:
        checks = srv.count(count)
        what = "alice"
    else:
        checks = srv.count_re(r"authentication failed: user=\S+ peer=198\.51\.100\.99 ")
        what = "from the source"
    # The bucket's N at once, then the rate measured after them, over an hour.
    burst = default_burst({"nat": "KNOWN", "spraying": "SOURCE"}.get(name, "ACCOUNT"))
    per_hour = burst + (checks - burst) * 3600 / elapsed if checks > burst else checks
    fig = {"attack": name, "sessions": srv.sessions, "checks": checks, "what": what,
           "per_hour": per_hour, "seconds": elapsed,
           "owner": owner.cell(), "bystander": other.cell(), "left": left,
           "bystander_who": f"{bystander[0]}@{bystander[1] if not bystander[2] else 'proxy'}"}
    if name == "flood":
        fig["attack"] = f"flood ({min(flooded[0], flood_size)} names)"
    srv.cleanup()
    return fig


def table(rows):
    head = ["attack", "sessions", "checks", "projected/hour", "owner s med/max",
            "bystander s med/max", "left after 10 s"]
    body = [[r["attack"], str(r["sessions"]),
             f"{r['checks']}" + (" (source)" if r["what"] != "alice" else ""),
             f"{r['per_hour']:.0f}", r["owner"], r["bystander"], str(r["left"])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10, help="per attack")
    ap.add_argument("--attacks",
                    default="v4mapped,ipv6,nat,own,abandoned,bystanders,spraying,flood")
    ap.add_argument("--flood-size", type=int, default=20000)
    ap.add_argument("pop3d_args", nargs="*", help="extra pop3d options (after --)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("skipped: run as root (pop3d serves the virtual users as --user nobody)")
        return 77
    rows = []
    for name in args.attacks.split(","):
        print(f"== {name}: {args.minutes:g} min", flush=True)
        fig = run_attack(name.strip(), args.minutes * 60, args.pop3d_args, args.flood_size)
        print(f"   {fig['sessions']} sessions in {fig['seconds']:.0f} s: {fig['checks']} checks "
              f"{fig['what']} ({fig['per_hour']:.0f}/h); owner {fig['owner']} s; bystander "
              f"{fig['bystander_who']} {fig['bystander']} s; {fig['left']} processes left",
              flush=True)
        rows.append(fig)
    print()
    print(f"Guessing attacks at the shipped defaults, {args.minutes:g} min each "
          f"(tests/stress/guessing.py):")
    print()
    print(table(rows))
    print()
    print("checks: failed password checks against alice (spraying: from the spraying source, "
          "across all accounts);\nprojected/hour: the bucket's N at once, then the measured "
          "rate after them, for an hour;\nowner: alice's correct password from an address she used "
          "before (nat: the NAT itself);\nbystander: bob new (v4mapped: ::ffff:192.0.2.55 via "
          "PROXY; nat: behind the NAT; others: 192.0.2.55),\nfrank known at the shared address "
          "(bystanders); times in seconds from PASS to the answer,\nin parentheses the answers "
          "that were not +OK.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
