"""Password guessing against the cross-session throttle (issue 18): the six
attacks of the issue, each against the model of doc/throttle.md (token
buckets --throttle-account, --throttle-known, --throttle-source; a
refusal is answered at once with -ERR [LOGIN-DELAY] naming the wait; never
[AUTH] for a password that was not checked; no pile-up of processes).

Short constants: --throttle-account 3/4 --throttle-known 2/6
--throttle-source 8/2 (a scenario changes one where it must). A bucket N/SECS
allows at most N + W/SECS failed checks in W seconds; the bounds below add one
for slack. Checks against alice are counted in the log as "login failed for
alice:" lines.

  1. v4-mapped addresses through PROXY v1/v2 and REMOTE_HOST are IPv4 sources
  2. a source known for the account (NAT) has a rate too; the owner is told the wait
  3. the attacker's own account does not reset the victim's limit
  4. abandoned attempts do not pile up; the owner still gets an answer at once
  5. a client that hangs up during the in-session delay is gone within ~1 s
  6. bystanders behind a shared address are not held hostage
  7. password spraying from one source is bounded; the known owner is unaffected

Each failed on the model before issue 18 (run with its options, on the same
assertions): 30 checks in 44 s through v4-mapped PROXY headers, 59 in 17 s
from the owner's NAT, 330 processes alive 10 s after abandoned attempts, the
known bystander held 4 s.

Usage: guessing.py [SCENARIO-NUMBER...]   (all by default)"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guesslib as G  # noqa: E402

PW = G.PASSWORDS
ACCOUNT, KNOWN, SOURCE = "3/4", "2/6", "8/2"
ATTACK = 15          # seconds of guessing per attack (spraying: 10)
IMMEDIATE = 2.0      # an answer that must come at once (refusals, a new user's login)
KNOWN_OWNER = 1.0    # the owner, or a user, from a source known for them: +0 s
NO_HANG = 5.0        # any answer at all: nobody is held


class Failed(Exception):
    pass


def check(srv, cond, what):
    if not cond:
        raise Failed(f"{what}\n-- log of {srv.name} (last lines):\n{srv.tail()}")


def throttle(account=ACCOUNT, known=KNOWN, source=SOURCE):
    return G.throttle_args(account, known, source)


def first_login(srv, user, source, header=b""):
    ans, took = srv.login(user, PW[user], source, header=header)
    check(srv, ans.startswith(b"+OK"), f"{user}'s first login from {source} "
          f"{header.strip()!r}: {ans!r}")


class Answers:
    """Answers of the attackers' sessions: kinds and latencies, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, answer, took):
        with self.lock:
            self.items.append((G.kind(answer), took, answer))

    def of(self, k):
        return [t for kk, t, _ in self.items if kk == k]

    def kinds(self):
        out = {}
        for k, _, _ in self.items:
            out[k] = out.get(k, 0) + 1
        return out

    def odd(self, allowed):
        return [(a, t) for k, t, a in self.items if k not in allowed]


def every_second_while(threads, body, gap=1.0):
    """Call body() about every `gap` s while any attacker thread runs."""
    time.sleep(gap)
    while any(t.is_alive() for t in threads):
        body()
        time.sleep(gap)


# ---- 1 ----

def v4_mapped_proxy():
    """IPv4 clients behind a dual-stack PROXY sender (HAProxy on :::110 v4v6)
    arrive as ::ffff:a.b.c.d; each must be its own IPv4 source, not one
    shared (and, once the owner used it, known) zero /64."""
    srv = G.Server("v4mapped", throttle(), extra=["--trusted-proxy", "127.0.0.1"])
    proxy = "127.0.0.1"
    # The owner logs in over IPv4, and over the same IPv4 as a dual-stack
    # listener sends it: both are the one source 198.51.100.7, known for alice.
    first_login(srv, "alice", proxy, G.proxy_v1("198.51.100.7"))
    first_login(srv, "alice", proxy, G.proxy_v1("::ffff:198.51.100.7", "::ffff:10.0.0.1"))
    answers = Answers()
    forms = {"v1 TCP6": 0, "v2 TCP6": 0, "REMOTE_HOST": 0}

    def guess(k, i):
        addr = f"::ffff:203.0.113.{i % 254 + 1}"
        form = ("v1 TCP6", "v2 TCP6", "REMOTE_HOST")[i % 3]
        forms[form] += 1
        if form == "v1 TCP6":
            r = srv.login("alice", f"guess{i}", proxy,
                          header=G.proxy_v1(addr, "::ffff:10.0.0.1", 40000 + i % 20000))
        elif form == "v2 TCP6":
            r = srv.login("alice", f"guess{i}", proxy,
                          header=G.proxy_v2(addr, "::ffff:10.0.0.1", 40000 + i % 20000))
        else:
            r = srv.login("alice", f"guess{i}", addr)
        answers.add(*r)

    threads, counter, t0 = G.parallel(8, ATTACK, guess)
    bob, owner = [], []

    def bystanders():
        bob.append(srv.login("bob", PW["bob"], proxy,
                             header=G.proxy_v1("::ffff:192.0.2.55", "::ffff:10.0.0.1")))
        owner.append(srv.login("alice", PW["alice"], proxy, header=G.proxy_v1("198.51.100.7")))

    every_second_while(threads, bystanders)
    elapsed, ended = G.join(threads, t0)
    checks = srv.count("login failed for alice:")
    limit = G.bound(ACCOUNT, elapsed)
    print(f"  {counter[0]} guessing sessions from ::ffff:203.0.113.0/120 ({forms}) in "
          f"{elapsed:.1f} s: {checks} password checks against alice (bound {limit}); "
          f"answers {answers.kinds()}")
    bob_max = max((t for _, t in bob), default=0.0)
    owner_max = max((t for _, t in owner), default=0.0)
    print(f"  bob from ::ffff:192.0.2.55: {len(bob)} logins "
          f"{sorted(set(G.kind(a) for a, _ in bob))}, max {bob_max:.2f} s; "
          f"owner from 198.51.100.7: {len(owner)} logins, max {owner_max:.2f} s")
    check(srv, ended, "the guessers did not end (a session hangs)")
    check(srv, counter[0] >= 24, f"the guesser did not run ({counter[0]} sessions)")
    check(srv, checks <= limit,
          f"{checks} password checks against alice in {elapsed:.1f} s, bound {limit}")
    check(srv, bob and all(a.startswith(b"+OK") for a, _ in bob) and bob_max < 1.5,
          f"bob from ::ffff:192.0.2.55 held or refused: {[(a, round(t, 2)) for a, t in bob]}")
    check(srv, owner and all(a.startswith(b"+OK") for a, _ in owner) and owner_max < 1.5,
          f"the owner from a known source held or refused: "
          f"{[(a, round(t, 2)) for a, t in owner]}")
    lines = srv.log_lines()
    mapped = [l for l in lines if "peer=::ffff:" in l]
    plain = [l for l in lines if "peer=203.0.113." in l]
    print(f"  log lines with peer=::ffff:: {len(mapped)}; with peer=203.0.113.X: {len(plain)}")
    check(srv, not mapped and plain,
          f"v4-mapped peers logged as such ({len(mapped)} lines), e.g. {mapped[:2]}")
    return f"{checks} checks against alice in {elapsed:.0f} s (bound {limit})"


# ---- 2 ----

def nat_known_source():
    """The owner's office NAT: a source known for alice, and 12 parallel
    guessers behind it. The known bucket bounds them; the owner's correct
    password is never answered [AUTH] and is told the wait."""
    srv = G.Server("nat", throttle())
    nat = "198.51.100.7"
    first_login(srv, "alice", nat)
    answers = Answers()

    def guess(k, i):
        answers.add(*srv.login("alice", f"guess{i}", nat))

    threads, counter, t0 = G.parallel(12, ATTACK, guess)
    owner = []
    every_second_while(threads, lambda: owner.append(srv.login("alice", PW["alice"], nat)),
                       gap=1.5)
    elapsed, ended = G.join(threads, t0)
    checks = srv.count("login failed for alice:")
    limit = G.bound(KNOWN, elapsed)
    refusals = answers.of("LOGIN-DELAY")
    print(f"  {counter[0]} guessing sessions from {nat} (known for alice) in {elapsed:.1f} s: "
          f"{checks} password checks against alice (bound {limit}); answers {answers.kinds()}, "
          f"slowest refusal {max(refusals, default=0):.2f} s, slowest answer "
          f"{max((t for _, t, _ in answers.items), default=0):.2f} s")
    print("  owner from the NAT during the attack: " +
          ", ".join(f"{G.kind(a)} {t:.2f}s" for a, t in owner))
    check(srv, ended, "the guessers did not end (a session hangs)")
    check(srv, counter[0] >= 24, f"the guesser did not run ({counter[0]} sessions)")
    check(srv, checks <= limit,
          f"{checks} password checks against alice in {elapsed:.1f} s, bound {limit}")
    odd = answers.odd({"AUTH", "LOGIN-DELAY"})
    check(srv, not odd, f"answers other than [AUTH] and [LOGIN-DELAY]: {odd[:5]}")
    check(srv, refusals, "no attempt was refused ([LOGIN-DELAY]) from the known source")
    check(srv, max(refusals) < IMMEDIATE,
          f"a refusal took {max(refusals):.2f} s (must come at once, < {IMMEDIATE} s)")
    slowest = max(t for _, t, _ in answers.items)
    check(srv, slowest < NO_HANG, f"an attacker's answer took {slowest:.2f} s (held)")
    check(srv, owner, "the owner did not try during the attack")
    bad = [(a, round(t, 2)) for a, t in owner
           if G.kind(a) not in ("+OK", "LOGIN-DELAY") or t >= IMMEDIATE]
    check(srv, not bad, f"the owner's correct password during the attack: {bad}")
    # After the attack: the owner waits what the refusal named, then logs in.
    ans, took = srv.login("alice", PW["alice"], nat)
    told = None
    if G.kind(ans) == "LOGIN-DELAY":
        told = G.named_wait(ans)
        check(srv, told is not None and told >= 0, f"the refusal names no wait: {ans!r}")
        check(srv, told <= 7 * 6, f"the wait named is beyond the bucket's refill: {ans!r}")
        time.sleep(told + 1)
        ans, took = srv.login("alice", PW["alice"], nat)
    print(f"  after the attack: told to wait {told} s; then {ans.strip()!r} in {took:.2f} s")
    check(srv, ans.startswith(b"+OK") and took < IMMEDIATE,
          f"the owner's correct password after the named wait: {ans!r} in {took:.2f} s")
    return f"{checks} checks against alice in {elapsed:.0f} s (bound {limit})"


# ---- 3 ----

def own_account():
    """Alternating a wrong password for alice with the right one for the
    attacker's own account mallory, from one address, as fast as possible."""
    srv = G.Server("own-account", throttle(source="100/1"))
    src = "192.0.2.33"
    first_login(srv, "mallory", src)
    alice, mallory = Answers(), Answers()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < ATTACK:
        alice.add(*srv.login("alice", f"guess{i}", src))
        mallory.add(*srv.login("mallory", PW["mallory"], src))
        i += 1
    elapsed = time.monotonic() - t0
    checks = srv.count("login failed for alice:")
    limit = G.bound(ACCOUNT, elapsed)
    print(f"  {i} rounds (alice wrong, mallory right) from {src} in {elapsed:.1f} s: "
          f"{checks} password checks against alice (bound {limit}, {checks * 3600 / elapsed:.0f}"
          f"/h); alice's answers {alice.kinds()}, mallory's {mallory.kinds()}")
    check(srv, i >= 5, f"only {i} rounds: the attack did not run")
    check(srv, checks <= limit,
          f"{checks} password checks against alice in {elapsed:.1f} s, bound {limit}")
    check(srv, not mallory.odd({"+OK"}), f"mallory's own login failed: {mallory.odd({'+OK'})[:3]}")
    odd = alice.odd({"AUTH", "LOGIN-DELAY"})
    check(srv, not odd, f"answers other than [AUTH] and [LOGIN-DELAY]: {odd[:5]}")
    return f"{checks} checks against alice in {elapsed:.0f} s (bound {limit})"


# ---- 4 ----

def abandoned_attempts():
    """Fire-and-forget guesses: 12 in parallel from many addresses, each
    client hanging up 1 s after PASS. The owner from a new address still gets
    an answer at once, never [AUTH]; 10 s after the attack no process is left."""
    srv = G.Server("abandoned", throttle())
    first_login(srv, "alice", "198.51.100.7")

    def guess(k, i):
        srv.hang_up_after_pass("alice", f"guess{i}", f"10.20.{i // 250 % 250}.{i % 250 + 1}",
                               after=1.0)
        srv.reap()

    threads, counter, t0 = G.parallel(12, ATTACK, guess)
    elapsed, ended = G.join(threads, t0)
    stopped = time.monotonic()
    alive_at_stop = len(srv.processes())
    ans, took = srv.login("alice", PW["alice"], "192.0.2.201", wait=10)
    gone = srv.wait_no_processes(max(0.0, 10 - (time.monotonic() - stopped)))
    left = srv.processes()
    checks = srv.count("login failed for alice:")
    print(f"  {counter[0]} abandoned guesses in {elapsed:.1f} s: {checks} password checks "
          f"against alice; {alive_at_stop} processes alive when the attack stopped, "
          f"{len(left)} 10 s later")
    print(f"  owner from a new address after the attack: {ans.strip()!r} in {took:.2f} s")
    try:
        check(srv, ended, "the guessers did not end")
        check(srv, G.kind(ans) in ("+OK", "LOGIN-DELAY") and took < IMMEDIATE,
              f"the owner's correct password from a new address: {ans!r} after {took:.2f} s")
        check(srv, gone is not None,
              f"{len(left)} pop3d processes alive 10 s after the attack stopped: {left[:10]}")
    finally:
        srv.cleanup()

    return f"owner {G.kind(ans)} in {took:.2f} s; nothing left"


# ---- 5 ----

def hang_up_in_delay():
    """A client that hangs up during the in-session delay after a failed
    login (--login-delay 5): its processes exit within ~1 s (2 s here)."""
    srv = G.Server("hangup-in-delay", throttle(account="100/1", source="100/1"), login_delay=5)
    p = srv.start("192.0.2.202")
    c = G.Client(p)
    try:
        c.line(10)
        c.send(b"USER bob\r\n")
        c.line(10)
        c.send(b"PASS wrong\r\n")
        # The answer is not awaited: the delay may come before it. After 1 s the
        # check (one crypt) is done and the 5 s delay runs.
        time.sleep(1.0)
    except OSError as e:
        check(srv, False, f"the session broke before the delay: {e}")
    srv.abandon(p)
    gone = srv.wait_no_processes(2.0)
    left = srv.processes()
    print(f"  hang-up 1 s into the 5 s in-session delay: processes gone after "
          f"{'%.2f s' % gone if gone is not None else 'more than 2 s'}")
    try:
        check(srv, gone is not None and srv.count("login failed for bob:") == 1,
              f"pop3d processes {left} alive 2 s after the client hung up during the "
              f"in-session delay ({srv.count('login failed for bob:')} checks)")
    finally:
        srv.cleanup()
    return f"gone after {gone:.2f} s"


# ---- 6 ----

def bystanders():
    """One user's typos behind a shared address hold nobody else."""
    srv = G.Server("bystanders", throttle())
    shared = "192.0.2.77"
    first_login(srv, "frank", shared)
    carol = Answers()
    for i in range(7):
        carol.add(*srv.login("carol", f"typo{i}", shared, wait=30))
    frank = srv.login("frank", PW["frank"], shared, wait=30)
    dave = srv.login("dave", PW["dave"], shared, wait=30)
    carol_ok = srv.login("carol", PW["carol"], shared, wait=30)
    print(f"  carol's 7 typos from {shared}: {carol.kinds()}, slowest "
          f"{max(t for _, t, _ in carol.items):.2f} s")
    for who, (a, t) in (("frank (known there)", frank), ("dave (new there)", dave),
                        ("carol's correct password", carol_ok)):
        print(f"  {who}: {a.strip()!r} in {t:.2f} s")
    odd = carol.odd({"AUTH", "LOGIN-DELAY"})
    check(srv, not odd, f"carol's typos answered otherwise: {odd}")
    check(srv, max(t for _, t, _ in carol.items) < NO_HANG, "carol's typos were held")
    check(srv, frank[0].startswith(b"+OK") and frank[1] < KNOWN_OWNER,
          f"frank, known at {shared}: {frank[0]!r} in {frank[1]:.2f} s")
    check(srv, dave[0].startswith(b"+OK") and dave[1] < IMMEDIATE,
          f"dave, new at {shared}: {dave[0]!r} in {dave[1]:.2f} s")
    check(srv, G.kind(carol_ok[0]) in ("+OK", "LOGIN-DELAY") and carol_ok[1] < IMMEDIATE,
          f"carol's correct password: {carol_ok[0]!r} in {carol_ok[1]:.2f} s")
    throttled = [l for l in srv.log_lines() if "authentication throttled" in l]
    print(f"  {len(throttled)} 'authentication throttled' lines")
    check(srv, all(" wait=" in l for l in throttled),
          f"throttled lines without wait=: {[l for l in throttled if ' wait=' not in l][:3]}")
    check(srv, not [l for l in throttled if "user=frank " in l], "frank was throttled")
    return f"frank {frank[1]:.2f} s, dave {dave[1]:.2f} s, carol {G.kind(carol_ok[0])}"


# ---- 7 ----

def spraying():
    """One source, many account names (most nonexistent): the source bucket
    bounds the checks; alice, who logged in from that source, is unaffected."""
    srv = G.Server("spraying", throttle())
    src = "198.51.100.99"
    first_login(srv, "alice", src)
    names = ["bob", "carol", "dave", "frank", "mallory"] + [f"user{n:02d}" for n in range(35)]
    answers = Answers()

    def guess(k, i):
        answers.add(*srv.login(names[i % len(names)], f"spray{i}", src))

    threads, counter, t0 = G.parallel(4, 10, guess)
    owner = []
    every_second_while(threads, lambda: owner.append(srv.login("alice", PW["alice"], src)))
    elapsed, ended = G.join(threads, t0)
    checks = srv.count_re(r"authentication failed: user=\S+ peer=198\.51\.100\.99 ")
    limit = G.bound(SOURCE, elapsed)
    refusals = answers.of("LOGIN-DELAY")
    print(f"  {counter[0]} sessions spraying {len(names)} names from {src} in {elapsed:.1f} s: "
          f"{checks} failed checks from it (bound {limit}); answers {answers.kinds()}")
    print("  alice (known there) meanwhile: " +
          ", ".join(f"{G.kind(a)} {t:.2f}s" for a, t in owner))
    check(srv, ended, "the sprayers did not end (a session hangs)")
    check(srv, counter[0] >= 16, f"the sprayer did not run ({counter[0]} sessions)")
    check(srv, checks <= limit, f"{checks} failed checks from {src} in {elapsed:.1f} s, "
          f"bound {limit}")
    odd = answers.odd({"AUTH", "LOGIN-DELAY"})
    check(srv, not odd, f"answers other than [AUTH] and [LOGIN-DELAY]: {odd[:5]}")
    check(srv, not refusals or max(refusals) < IMMEDIATE,
          f"a refusal took {max(refusals, default=0):.2f} s")
    check(srv, owner and all(a.startswith(b"+OK") and t < KNOWN_OWNER for a, t in owner),
          f"alice from her known source: {[(a, round(t, 2)) for a, t in owner]}")
    return f"{checks} failed checks from the source in {elapsed:.0f} s (bound {limit})"


SCENARIOS = [v4_mapped_proxy, nat_known_source, own_account, abandoned_attempts,
             hang_up_in_delay, bystanders, spraying]


def main():
    if not os.access(G.P.POP3D, os.X_OK):
        print(f"skipped: no {G.P.POP3D} (make pop3d)")
        return 77
    chosen = [SCENARIOS[int(a) - 1] for a in sys.argv[1:]] or SCENARIOS
    failed = []
    start = time.monotonic()
    for n, fn in enumerate(chosen, 1):
        name = fn.__name__.replace("_", " ")
        print(f"== {SCENARIOS.index(fn) + 1}. {name}")
        t0 = time.monotonic()
        try:
            summary = fn()
            print(f"ok      {name}: {summary} ({time.monotonic() - t0:.0f} s)")
        except Failed as e:
            print(f"FAILED  {name}: {e}")
            failed.append(name)
        sys.stdout.flush()
    print(f"{len(chosen) - len(failed)} passed, {len(failed)} failed "
          f"({time.monotonic() - start:.0f} s)" + (": " + ", ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
