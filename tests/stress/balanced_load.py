"""Load through HAProxy to two pop3d hosts, side by side with the same load on
one host without the proxy (doc/performance.md, "Several hosts behind
HAProxy"); prints figures, not run by make check. Root only:

    sudo python3 tests/stress/balanced_load.py [--clients 50] [--duration 60] [--quick]

Two "hosts" are network namespaces on private links (10.232.1.0/24 and
10.232.2.0/24, made here and removed at the end), each running pop3d under
xinetd on one shared spool; HAProxy (contrib/haproxy/pop3d.cfg, send-proxy-v2,
POP3 health check) and the clients run in a third namespace. The hosts' pop3d
has --trusted-proxy for HAProxy's side of its link; in the single-host setup
host A runs without it and the clients connect to it straight.

Each client loops for the duration without pause (a closed loop), each
session on a mailbox picked at random: connect, USER/PASS, STAT, UIDL, RETR of
every message whose UIDL it has not seen, DELE of everything listed, QUIT.
-ERR [IN-USE] (another client has that mailbox) counts as busy and is retried
after a short sleep; anything else that goes wrong counts as an error.
Meanwhile procmail (dotlock + fcntl, as on Debian) delivers to the same
mailboxes at up to --rate messages a second, each with a serial. At the end every mailbox is drained and every
delivered serial must have been retrieved exactly once: lost = delivered and
never retrieved, duplicated = retrieved twice (or a message deleted by a QUIT
that said +OK listed again). Exit status 1 when anything was lost, duplicated
or an error.
"""
import argparse
import faulthandler
import os
import poplib
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import deploy_common as D  # noqa: E402
import pop3lib as P  # noqa: E402
import run as B  # noqa: E402  (bench/run.py: the cheap sha256crypt hash and its password)

MDAS = 6                           # procmail processes delivering at once
LINK = {"a": 1, "b": 2}            # 10.232.N.1 the proxies' side, 10.232.N.2 the host


def host_addr(h):
    return f"10.232.{LINK[h]}.2"


def proxy_side(h):
    return f"10.232.{LINK[h]}.1"


def options():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60, help="seconds of load per setup")
    ap.add_argument("--mailboxes", type=int, default=0,
                    help="virtual users (default: as many as clients)")
    ap.add_argument("--rate", type=float, default=20, help="messages a second the MDA delivers")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 8 clients, 10 s")
    ap.add_argument("--inner", nargs=3, metavar=("LB", "A", "B"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.quick:
        a.clients, a.duration, a.rate = 8, 10, 10
    a.mailboxes = a.mailboxes or a.clients
    return a


# ---- outside: the namespaces, and the measurement run inside them ----

def ip(*words):
    subprocess.run(["ip", *words], check=True, timeout=30)


def make_namespaces(names):
    lb, hosts = names[0], dict(zip("ab", names[1:]))
    for ns in names:
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    for h, ns in hosts.items():
        veth = f"bl{LINK[h]}"
        ip("-n", lb, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("-n", lb, "addr", "add", f"{proxy_side(h)}/24", "dev", veth)
        ip("-n", lb, "link", "set", veth, "up")
        ip("-n", ns, "addr", "add", f"{host_addr(h)}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")


def remove_namespaces(names):
    for ns in names:
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, timeout=30)


def outside(a):
    if os.geteuid() != 0:
        sys.exit("balanced_load.py: network namespaces need root")
    for c in ("ip", "haproxy", "xinetd", "procmail"):
        if not shutil.which(c):
            sys.exit(f"balanced_load.py: {c} is not installed")
    if not os.access(P.POP3D, os.X_OK):
        sys.exit(f"balanced_load.py: no {P.POP3D}: run make pop3d first")
    names = [f"bl{x}{os.getpid()}" for x in ("lb", "a", "b")]
    limit = 2 * a.duration + 240        # both setups, their start, drain and checks
    rc = 2
    try:
        make_namespaces(names)
        inner = subprocess.Popen(["ip", "netns", "exec", names[0], sys.executable,
                                  os.path.abspath(__file__), "--inner", *names, *sys.argv[1:]])
        try:
            rc = inner.wait(timeout=limit)
        except KeyboardInterrupt:       # the inner run got it too: let it tidy up
            try:
                rc = inner.wait(timeout=30)
            except subprocess.TimeoutExpired:
                inner.kill()
                rc = inner.wait()
        except subprocess.TimeoutExpired:
            print(f"balanced_load.py: gave up after {limit:.0f} s", file=sys.stderr)
            inner.kill()
            inner.wait()
    finally:
        remove_namespaces(names)
    return rc


# ---- inside: hosts, proxy, MDA, clients ----

class Box:
    """One virtual user's mailbox, as the user's mail client sees it."""

    def __init__(self, user, path):
        self.user, self.path = user, path
        self.seen = set()       # UIDLs retrieved
        self.deleted = set()    # UIDLs deleted by a QUIT that answered +OK


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []     # seconds, sessions that ended with QUIT +OK
        self.busy = 0
        self.errors = []        # what went wrong, one entry per failed session
        self.delivered = []     # serials procmail delivered (exit status 0)
        self.retrieved = []     # serials RETRieved, by the load and by the drain
        self.reappeared = 0

    def error(self, what):
        with self.lock:
            self.errors.append(what)


SERIAL = re.compile(rb"^X-Serial: (\S+)$")


def serial_of(lines):
    for line in lines:
        if not line:
            break               # end of the header
        m = SERIAL.match(line)
        if m:
            return m.group(1).decode()
    raise AssertionError("a message without X-Serial")


def session(target, box, tally):
    """One POP3 session on BOX. True when it ended with QUIT +OK, False when
    the login was answered [IN-USE]; raises for anything else."""
    c = poplib.POP3(*target, timeout=30)
    try:
        c.user(box.user)
        try:
            c.pass_(B.PASSWORD)
        except poplib.error_proto as e:
            if b"[IN-USE]" in e.args[0]:
                c.quit()
                return False
            raise
        c.stat()
        listed = [line.split() for line in c.uidl()[1]]
        gone = []
        for num, uid in listed:
            if uid in box.deleted:
                with tally.lock:
                    tally.reappeared += 1
            if uid not in box.seen:
                lines = c.retr(int(num))[1]
                with tally.lock:
                    tally.retrieved.append(serial_of(lines))
                box.seen.add(uid)
            c.dele(int(num))
            gone.append(uid)
        c.quit()                # raises unless +OK
        box.deleted.update(gone)
        return True
    finally:
        c.close()


def client(k, target, boxes, tally, stop):
    """A closed loop of sessions, each on a mailbox picked at random: two
    clients on one mailbox at once is what [IN-USE] is for."""
    rng = random.Random(k)
    while not stop.is_set():
        box = rng.choice(boxes)
        t0 = time.monotonic()
        try:
            done = session(target, box, tally)
        except (OSError, EOFError, poplib.error_proto, AssertionError) as e:
            tally.error(f"{type(e).__name__}: {e}"[:120])
            time.sleep(0.05)
            continue
        if done:
            with tally.lock:
                tally.latencies.append(time.monotonic() - t0)
        else:
            with tally.lock:
                tally.busy += 1
            time.sleep(rng.uniform(0.01, 0.03))


def mda(k, rate, rc, boxes, tally, stop, d):
    """procmail delivering at RATE messages a second to random mailboxes."""
    rng = random.Random(1000 + k)
    n = 0
    due = time.monotonic()
    while not stop.is_set():
        due = max(due + 1 / rate, time.monotonic() - 1)
        time.sleep(max(0.0, due - time.monotonic()))
        serial = f"m{k}-{n}"
        n += 1
        box = rng.choice(boxes)
        msg = P.message(rng, n).replace(b"Subject: ", f"X-Serial: {serial}\nSubject: ".encode(), 1)
        msg = b"From sender@example.org Mon Nov  2 09:14:07 2026\n" + msg
        try:
            r = subprocess.run(["procmail", "-m", f"BOX={box.path}", rc], input=msg,
                               user="nobody", group="nogroup", extra_groups=[],
                               env={"HOME": d, "PATH": "/usr/bin:/bin"},
                               stderr=subprocess.DEVNULL, timeout=60)
            ok = r.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if ok:
            with tally.lock:
                tally.delivered.append(serial)
        else:
            tally.error(f"procmail failed to deliver {serial}")


def xinetd_config(d, h, pop3d_args, log):
    """xinetd.d/pop3 on the host's address, port 110, with its limits lifted:
    behind a proxy every connection comes from the proxy's address, so the
    shipped per_source = 10 and cps = 50 10 would cap the proxy itself."""
    shipped = os.path.join(P.ROOT, "xinetd.d", "pop3")
    args = D.get_option(D.read(shipped).decode(), "server_args") + " " + D.no_spaces(pop3d_args)
    text = D.xinetd_config(shipped, 110, P.POP3D, args, log)
    text = text.replace("bind            = 127.0.0.1", f"bind            = {host_addr(h)}")
    for name, value in (("instances", "UNLIMITED"), ("per_source", "UNLIMITED"),
                        ("cps", "100000 1")):
        text = D.set_option(text, name, value)
    path = os.path.join(d, f"xinetd-{h}.conf")
    D.write(path, text)
    return path


def start_host(d, ns, h, pop3d_args, procs):
    conf = xinetd_config(d, h, pop3d_args, os.path.join(d, f"xinetd-{h}-service.log"))
    procs.append(D.spawn(["ip", "netns", "exec", ns, "xinetd", "-dontfork",
                          "-filelog", os.path.join(d, f"xinetd-{h}.log"), "-f", conf,
                          "-pidfile", os.path.join(d, f"xinetd-{h}.pid")],
                         os.path.join(d, f"xinetd-{h}.out")))
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection((host_addr(h), 110), timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"host {h} does not listen")


def haproxy_config(d, port):
    """contrib/haproxy/pop3d.cfg with our addresses; no syslog."""
    text = D.read(os.path.join(P.ROOT, "contrib", "haproxy", "pop3d.cfg")).decode()
    edits = [("bind :110", f"bind 127.0.0.1:{port}"),
             ("server mail1 192.0.2.11:110", f"server mail1 {host_addr('a')}:110"),
             ("server mail2 192.0.2.12:110", f"server mail2 {host_addr('b')}:110"),
             ("    log /dev/log local0\n", ""), ("    log global\n", ""),
             ("    option tcplog\n", "")]
    for old, new in edits:
        assert old in text, f"contrib/haproxy/pop3d.cfg has no {old!r}"
        text = text.replace(old, new)
    path = os.path.join(d, "haproxy.cfg")
    D.write(path, text)
    return path


def server_pid(proc, name):
    """The NAME process below a front end D.spawn started (timeout, ip netns exec)."""
    for pid in P.descendants(proc.pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == name:
                    return pid
        except OSError:
            pass
    raise AssertionError(f"no {name} below {proc.pid}")


def tree_cpu(pid):
    """CPU seconds of PID and of the children it has waited for (xinetd waits
    for each pop3d, which waits for its own helper processes)."""
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in v[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)          # busy (all but idle, iowait), total


def drain(target, boxes, tally, timeout=60):
    """Log in to every mailbox until a session got through; what it lists is
    retrieved (and counted) as by the load."""
    deadline = time.time() + timeout
    for box in boxes:
        while True:
            try:
                if session(target, box, tally):
                    break
            except (OSError, EOFError, poplib.error_proto, AssertionError) as e:
                tally.error(f"drain {box.user}: {type(e).__name__}: {e}"[:120])
            if time.time() > deadline:
                tally.error(f"drain {box.user}: gave up")
                break
            time.sleep(0.1)


def run_setup(a, ns, balanced):
    name = "balanced" if balanced else "single"
    d = D.fresh_dir(f"balanced-load-{name}")
    spool = os.path.join(d, "spool")
    os.makedirs(spool)
    passwd = os.path.join(d, "passwd")
    users = [f"u{i:03d}" for i in range(a.mailboxes)]
    D.write(passwd, "".join(f"{u}:{B.CHEAP_HASH}\n" for u in users), 0o644)
    rc = os.path.join(d, "procmailrc")
    # LOCKSLEEP: procmail retries a busy dotlock every 8 s by default.
    D.write(rc, f"LOGFILE={d}/procmail.log\nLOCKSLEEP=1\n:0:\n$BOX\n", 0o644)
    boxes = [Box(u, os.path.join(spool, f"{u}.mbox")) for u in users]
    for box in boxes:
        # Empty, as adduser leaves /var/mail/USER: procmail creating a missing
        # mailbox holds its dotlock for a second, which logins would wait out.
        D.write(box.path, b"", 0o600)
    P.give_to_server(d)
    state = P.state_args()      # one for both hosts, as a shared one would be
    logs = {h: os.path.join(d, f"pop3d-{h}.log") for h in "ab"}
    procs = []
    tally = Tally()
    try:
        hosts = "ab" if balanced else "a"
        for h in hosts:
            args = ["--passwd", passwd, "--mailbox", os.path.join(spool, "%u.mbox"),
                    "--log", logs[h], "--login-delay", "0", "--user", "nobody", *state]
            if balanced:
                args.append(f"--trusted-proxy={proxy_side(h)}")
            start_host(d, ns[h], h, args, procs)
        if balanced:
            port = P.free_port()
            procs.append(D.spawn(["haproxy", "-db", "-f", haproxy_config(d, port)],
                                 os.path.join(d, "haproxy.out")))
            D.wait_listen(port, procs[-1])
            target = ("127.0.0.1", port)
        else:
            target = (host_addr("a"), 110)
        time.sleep(1)           # the first health checks
        stop = threading.Event()
        clients = [threading.Thread(target=client, args=(k, target, boxes, tally, stop),
                                    daemon=True) for k in range(a.clients)]
        # Several at once, as an MTA runs them: one that finds a dotlock taken
        # sleeps a second (LOCKSLEEP) before it tries again.
        mdas = [threading.Thread(target=mda, args=(k, a.rate / MDAS, rc, boxes, tally, stop, d),
                                 daemon=True) for k in range(MDAS)]
        servers = [server_pid(p, "xinetd" if k < len(hosts) else "haproxy")
                   for k, p in enumerate(procs)]
        cpu0 = [tree_cpu(pid) for pid in servers]
        busy0, total0 = cpu_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        rc0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        for t in mdas + clients:
            t.start()
        try:
            stop.wait(a.duration)
        finally:
            stop.set()
            for t in mdas + clients:
                t.join(timeout=60)
        elapsed = time.monotonic() - t0
        busy1, total1 = cpu_ticks()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        rc1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = [tree_cpu(pid) for pid in servers]
        if any(t.is_alive() for t in mdas + clients):
            tally.error("a client or the MDA did not stop within 60 s")
        n_sessions = len(tally.latencies)
        drain(target, boxes, tally)
        for box in boxes:       # the drain left nothing: what is left counts as retrieved
            if os.path.exists(box.path):
                left = P.split_mbox(D.read(box.path))
                tally.retrieved.extend(serial_of(m.split(b"\n")) for m in left)
                if left:
                    tally.error(f"{len(left)} messages left in {box.user}'s mailbox after the drain")
    finally:
        for p in reversed(procs):
            D.stop(p)
    counts = {}
    for s in tally.retrieved:
        counts[s] = counts.get(s, 0) + 1
    delivered = set(tally.delivered)
    lat = sorted(tally.latencies[:n_sessions])
    logins = {h: D.pop3d_log(logs[h]).count("login: user=") for h in hosts}
    return {
        "setup": "2 hosts via HAProxy" if balanced else "1 host direct",
        "sessions": n_sessions, "rate": n_sessions / elapsed,
        "p50": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99": 1000 * lat[-(-99 * len(lat) // 100) - 1] if lat else float("nan"),   # nearest rank
        "errors": len(tally.errors), "busy": tally.busy,
        "delivered": len(delivered), "retrieved": len(counts),
        "lost": len(delivered - set(counts)),
        "dup": sum(n - 1 for n in counts.values()) + tally.reappeared
        + len(set(counts) - delivered),
        "cpu": 100 * (busy1 - busy0) / max(1, total1 - total0),
        "client_cpu": (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / elapsed,
        # CPU seconds over the load: xinetd + pop3d (all hosts), HAProxy,
        # procmail (this process's waited-for children), clients + MDA driver
        "parts": {"pop3d+xinetd": sum(cpu1[:len(hosts)]) - sum(cpu0[:len(hosts)]),
                  "haproxy": sum(cpu1[len(hosts):]) - sum(cpu0[len(hosts):]),
                  "procmail": rc1.ru_utime + rc1.ru_stime - rc0.ru_utime - rc0.ru_stime,
                  "clients": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime},
        "logins": logins, "first_errors": tally.errors[:5],
    }


def inside(a):
    faulthandler.register(signal.SIGUSR1, all_threads=True)   # kill -USR1: where it hangs
    ns = dict(zip("ab", a.inner[1:]))
    D.SESSION_LIMIT = max(D.SESSION_LIMIT, int(a.duration) + 180)   # the front ends' timeout
    print(f"{a.clients} clients, {a.mailboxes} mailboxes, {a.duration:g} s a setup, "
          f"procmail delivering {a.rate:g} messages/s; {os.cpu_count()} CPUs shared by all",
          flush=True)
    rows = []
    for balanced in (True, False):
        rows.append(run_setup(a, ns, balanced))
        r = rows[-1]
        print(f"... {r['setup']}: done; logins per host {r['logins']}; machine CPU busy "
              f"{r['cpu']:.0f}%; CPU ms a session: " +
              ", ".join(f"{k} {1000 * v / max(1, r['sessions']):.2f}"
                        for k, v in r["parts"].items()), flush=True)
        for e in r["first_errors"]:
            print(f"    error: {e}", flush=True)
    head = ("setup", "sessions", "sess/s", "p50 ms", "p99 ms", "errors", "busy",
            "delivered", "retrieved", "lost", "dup")
    fmt = "{:<20} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>9} {:>9} {:>5} {:>5}"
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(r["setup"], r["sessions"], f"{r['rate']:.1f}", f"{r['p50']:.1f}",
                         f"{r['p99']:.1f}", r["errors"], r["busy"], r["delivered"],
                         r["retrieved"], r["lost"], r["dup"]))
    return 1 if any(r["lost"] or r["dup"] or r["errors"] for r in rows) else 0


def main():
    a = options()
    return inside(a) if a.inner else outside(a)


if __name__ == "__main__":
    sys.exit(main())
