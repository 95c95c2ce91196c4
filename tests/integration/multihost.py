"""Two pop3d hosts sharing one spool, behind HAProxy (PROXY v2, POP3 health
check) and nginx's mail proxy (PROXY v1, users routed by a map), run by
multihost.sh inside network namespaces it made. This script runs in the
proxies' namespace: clients use its loopback, the hosts are 10.231.1.2 and
10.231.2.2 (each a socat in its own namespace running pop3d with
--trusted-proxy naming the proxies' end of its link).

- Through HAProxy: logins work on both hosts, each host logs the client's
  address (127.0.0.1 here), never the proxy's; UIDLs are the same from both.
- Across hosts: a session on A holds the maildrop, a login on B is
  -ERR [IN-USE]; an update killed on A is finished by the next login on B.
- Through nginx: alice lands on A, bob on B, both logged with the client's
  address.
- A stopped backend is taken out by HAProxy's health check: every session
  after it goes to B and succeeds; no mail is lost.
"""
import os
import poplib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import deploy_common as D
import pop3lib as P

NS = {"a": os.environ["NS_A"], "b": os.environ["NS_B"]}
PASSWORDS = {"alice": P.PASSWORD, "bob": "correct horse"}   # tests/scripts/passwd
ADDR = {"a": "10.231.1.2", "b": "10.231.2.2"}
PROXY_SIDE = {"a": "10.231.1.1", "b": "10.231.2.1"}
FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")

d = P.tmpdir("multihost")
shutil.rmtree(d)
os.makedirs(d)
spool = os.path.join(d, "spool")
os.makedirs(spool)
logs = {h: os.path.join(d, f"host-{h}.log") for h in NS}
STATE = P.state_args()   # one state directory for both hosts, as a shared one would be
rng = random.Random(12)
failures = []
procs = []


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what, flush=True)
    if not cond:
        failures.append(what)


def fresh_mailboxes():
    msgs = {"alice": [P.message(rng, i) for i in range(12)],
            "bob": [P.message(rng, 100 + i) for i in range(4)]}
    for user, m in msgs.items():
        with open(os.path.join(spool, f"{user}.mbox"), "wb") as f:
            f.write(P.mbox_of(m))
    P.give_to_server(spool)
    return msgs


def mailbox(user):
    with open(os.path.join(spool, f"{user}.mbox"), "rb") as f:
        return P.split_mbox(f.read())


def pop3d_args(host):
    return ["--passwd", P.PASSWD, "--mailbox", os.path.join(spool, "%u.mbox"),
            "--log", logs[host], "--login-delay", "0", "--user", "nobody",
            "--trusted-proxy", PROXY_SIDE[host], *STATE]


def start_host(host):
    argv = ["ip", "netns", "exec", NS[host], "socat", "-lf", os.path.join(d, f"socat-{host}.log"),
            f"TCP-LISTEN:110,bind={ADDR[host]},reuseaddr,fork",
            P.socat_exec(d, [P.POP3D, *pop3d_args(host)])]
    p = D.spawn(argv, os.path.join(d, f"socat-{host}.out"))
    procs.append(p)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection((ADDR[host], 110), timeout=2).close()
            return p
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"host {host} does not listen")


def log_text(host):
    return D.pop3d_log(logs[host]) if os.path.exists(logs[host]) else ""


def count(host, needle):
    return log_text(host).count(needle)


def wait_count(hosts, needle, want, timeout=15):
    """Each host's count of NEEDLE once together they reach WANT: the log line
    travels through the authenticator, which may write it after the client
    has its answer (slowly so in the sanitizer stage)."""
    deadline = time.time() + timeout
    while True:
        got = {h: count(h, needle) for h in hosts}
        if sum(got.values()) >= want or time.time() > deadline:
            return got
        time.sleep(0.05)


def direct(host, header=True):
    """A POP3 client straight to a host, as a proxy would connect (PROXY v1 first)."""
    s = socket.create_connection((ADDR[host], 110), timeout=30)
    if header:
        s.sendall(b"PROXY TCP4 198.51.100.4 %s 50000 110\r\n" % ADDR[host].encode())
    c = poplib.POP3.__new__(poplib.POP3)
    c.host, c.port, c._tls_established = ADDR[host], 110, False
    c.sock = s
    c.file = s.makefile("rb")
    c._debugging = 0
    c.welcome = c._getresp()
    return c


def uidls(c):
    return [line.split()[1] for line in c.uidl()[1]]


def haproxy_config(port, sock):
    text = D.read(os.path.join(P.ROOT, "contrib", "haproxy", "pop3d.cfg")).decode()
    text = text.replace("    log /dev/log local0\n", f"    stats socket {sock} level admin\n")
    text = text.replace("    log global\n    option tcplog\n", "")
    text = text.replace("bind :110", f"bind 127.0.0.1:{port}")
    text = text.replace("inter 2s fall 2 rise 2", "inter 500ms fall 2 rise 1")
    text = text.replace("192.0.2.11:110", f"{ADDR['a']}:110").replace("192.0.2.12:110",
                                                                      f"{ADDR['b']}:110")
    assert f"{ADDR['a']}:110" in text and "send-proxy-v2" in text and "check-send-proxy" in text
    path = os.path.join(d, "haproxy.cfg")
    D.write(path, text)
    return path


def nginx_config(port, auth_port):
    text = D.read(os.path.join(P.ROOT, "contrib", "nginx", "pop3-mail.conf")).decode()
    text = text.replace("listen 110;", f"listen 127.0.0.1:{port};")
    text = text.replace("127.0.0.1:8110", f"127.0.0.1:{auth_port}")
    text = text.replace("192.0.2.11", ADDR["a"]).replace("192.0.2.12", ADDR["b"])
    text = text.replace("http {", "http {\n    access_log off;\n", 1)
    head = (f"daemon off;\nmaster_process off;\npid {d}/nginx.pid;\n"
            f"error_log {d}/nginx-error.log info;\n")
    assert "proxy_protocol on;" in text and ADDR["b"] in text
    path = os.path.join(d, "nginx.conf")
    D.write(path, head + text)
    return path


def server_stat(sock, name, field):
    """A field of HAProxy's "show stat" for a server of backend pop3d."""
    r = subprocess.run(["socat", "-", f"UNIX-CONNECT:{sock}"], input=b"show stat\n",
                       capture_output=True, timeout=10)
    lines = r.stdout.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        return "?"
    col = lines[0][2:].split(",").index(field)
    for line in lines[1:]:
        f = line.split(",")
        if len(f) > col and f[0] == "pop3d" and f[1] == name:
            return f[col]
    return "?"


def wait_state(sock, name, want, field="status", timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server_stat(sock, name, field).startswith(want):
            return True
        time.sleep(0.2)
    return False


try:
    msgs = fresh_mailboxes()
    hosts = {h: start_host(h) for h in NS}

    # ---- straight to the hosts: one spool, one maildrop, one set of UIDLs ----
    ca = direct("a")
    ca.user("alice")
    ca.pass_(P.PASSWORD)
    ua = uidls(ca)
    cb = direct("b")
    cb.user("alice")
    try:
        cb.pass_(P.PASSWORD)
        busy = ""
    except poplib.error_proto as e:
        busy = str(e)
    check("[IN-USE]" in busy, f"a session on A holds the maildrop: a login on B is [IN-USE] ({busy})")
    cb.quit()
    ca.quit()
    time.sleep(0.3)
    cb = direct("b")
    cb.user("alice")
    cb.pass_(P.PASSWORD)
    check(uidls(cb) == ua and len(ua) == 12, "the same UIDLs from A and from B")
    cb.quit()
    check(wait_count(("a",), "login: user=alice peer=198.51.100.4 ", 1)["a"] and
          wait_count(("b",), "login: user=alice peer=198.51.100.4 ", 1)["b"],
          "each host logs the address of the PROXY header")

    # ---- an update killed on A, finished by the next login on B ----
    killed = False
    for step in (9, 7, 5, 4, 3):
        fresh = fresh_mailboxes()["alice"]
        env = dict(os.environ, POP3D_KILL_AT_STEP=str(step))
        r = subprocess.run(["ip", "netns", "exec", NS["a"], FAULT, *pop3d_args("a")],
                           input=b"USER alice\r\nPASS secret\r\nDELE 1\r\nDELE 2\r\nDELE 5\r\nQUIT\r\n",
                           capture_output=True, env=env, timeout=60)
        if r.returncode == -signal.SIGKILL:
            killed = True
            break
    check(killed, "the update on A was killed mid-way")
    cb = direct("b")
    cb.user("alice")
    cb.pass_(P.PASSWORD)
    cb.quit()
    time.sleep(0.3)
    after = mailbox("alice")
    kept = [m for i, m in enumerate(fresh, 1) if i not in (1, 2, 5)]
    check(after in (fresh, kept) and not [n for n in os.listdir(spool) if "journal" in n],
          f"B's login finished it: {len(after)} messages, every one once, no journal left")

    # ---- HAProxy: PROXY v2, the POP3 health check, balancing ----
    msgs = fresh_mailboxes()
    hport, sock = P.free_port(), os.path.join(d, "haproxy.sock")
    hap = D.spawn(["haproxy", "-db", "-f", haproxy_config(hport, sock)], os.path.join(d, "haproxy.out"))
    procs.append(hap)
    D.wait_listen(hport, hap)
    # A server starts UP before any check has run: only a check that ran and
    # passed (L7OK) shows the check works.
    check(all(wait_state(sock, m, "L7OK", field="check_status") and wait_state(sock, m, "UP")
              for m in ("mail1", "mail2")),
          "HAProxy's POP3 health check (PROXY v2 LOCAL, +OK, QUIT) passes on both hosts")
    before = {h: count(h, "login: user=alice peer=127.0.0.1 ") for h in NS}
    seen = []
    for _ in range(4):
        c = poplib.POP3("127.0.0.1", hport, timeout=30)
        c.user("alice")
        c.pass_(P.PASSWORD)
        seen.append(uidls(c))
        c.quit()
        time.sleep(0.2)
    now = wait_count(NS, "login: user=alice peer=127.0.0.1 ", sum(before.values()) + 4)
    gained = {h: now[h] - before[h] for h in NS}
    check(sum(gained.values()) == 4 and all(gained.values()),
          f"through HAProxy: logins on both hosts, logged with the client's address ({gained})")
    check(all(u == seen[0] for u in seen) and len(seen[0]) == 12, "through HAProxy: the same UIDLs")
    check(not re.search(r"login: user=\S+ peer=10\.231\.", log_text("a") + log_text("b")),
          "no login is logged with a proxy's address")

    # ---- nginx's mail proxy: users routed by the map, PROXY v1 ----
    nport, aport = P.free_port(), P.free_port()
    ngx = D.spawn(["nginx", "-c", nginx_config(nport, aport)], os.path.join(d, "nginx.out"))
    procs.append(ngx)
    D.wait_listen(nport, ngx)
    for user, host in (("alice", "a"), ("bob", "b")):
        n0 = count(host, f"login: user={user} peer=127.0.0.1 ")
        c = poplib.POP3("127.0.0.1", nport, timeout=30)
        c.user(user)
        c.pass_(PASSWORDS[user])
        got = c.stat()[0]
        _, lines, _ = c.retr(1)
        c.quit()
        time.sleep(0.3)
        check(got == len(msgs[user]) and
              b"".join(l + b"\r\n" for l in lines) == P.wire_form(msgs[user][0]) and
              wait_count((host,), f"login: user={user} peer=127.0.0.1 ", n0 + 1)[host] == n0 + 1,
              f"through nginx: {user} on host {host.upper()}, the client's address logged")

    # ---- a backend stopped: the health check takes it out ----
    D.stop(hosts["a"])
    check(wait_state(sock, "mail1", "DOWN"), "HAProxy marks the stopped host A down")
    nb = count("b", "login: user=alice peer=127.0.0.1 ")
    ok = 0
    for _ in range(4):
        c = poplib.POP3("127.0.0.1", hport, timeout=30)
        c.user("alice")
        c.pass_(P.PASSWORD)
        ok += c.stat()[0] == 12
        c.quit()
        time.sleep(0.2)
    check(ok == 4 and wait_count(("b",), "login: user=alice peer=127.0.0.1 ", nb + 4)["b"] == nb + 4,
          "every session after it goes to B and is served")
    check(mailbox("alice") == msgs["alice"] and mailbox("bob") == msgs["bob"], "no mail lost")
finally:
    for p in reversed(procs):
        D.stop(p)

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
