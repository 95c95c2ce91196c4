"""The PROXY protocol (--trusted-proxy) through the real binary, on pipes (the
connection's address from SOCAT_PEERADDR, as socat's exec sets it) and over
TCP through socat on 127.0.0.1:

- from a trusted peer, a v1 or v2 header gives the client's address to the
  log lines; what follows the header in the same write is the session's;
- v2 LOCAL (HAProxy's health checks) and v1 UNKNOWN keep the proxy's address;
- from a trusted peer the header is mandatory: none, a malformed one, one cut
  short by EOF or one that does not arrive in time closes the connection
  with a log line and no greeting;
- from an untrusted peer nothing is parsed: a PROXY line is an unknown command;
- --tls-only judges the client, not the proxy: a remote client is refused
  USER unless the v2 header says it came over TLS.
"""
import os
import socket
import struct
import subprocess
import sys
import time

import deploy_common as D
import pop3lib as P

d = P.tmpdir("proxy-header")
log = os.path.join(d, "pop3d.log")
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    demo = f.read()
failures = []
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
LOGIN = b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n"


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what)
    if not cond:
        failures.append(what)


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


V2_TCP4 = v2(1, 0x11, bytes([203, 0, 113, 9, 127, 0, 0, 1, 0x9c, 0x40, 0, 110]))
V2_TCP6 = v2(1, 0x21, socket.inet_pton(socket.AF_INET6, "2001:db8::7") +
             socket.inet_pton(socket.AF_INET6, "::1") + b"\x9c\x40\x00\x6e")
SSL_TLV = bytes([0x20, 0, 5, 1, 0, 0, 0, 0])
V2_TLS = v2(1, 0x11, bytes([203, 0, 113, 9, 127, 0, 0, 1, 0x9c, 0x40, 0, 110]) + SSL_TLV)


def session(data, peer="127.0.0.5", extra=(), trusted="127.0.0.0/8", keep_open=0.0):
    """One pop3d on pipes: (exit status, output, new log lines)."""
    box = os.path.join(d, "alice.mbox")
    with open(box, "wb") as f:
        f.write(demo)
    P.give_to_server(d)
    start = os.path.getsize(log) if os.path.exists(log) else 0
    env = dict(os.environ, SOCAT_PEERADDR=peer)
    args = [P.POP3D, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"),
            "--log", log, "--login-delay", "0", *P.root_args(), *P.state_args(), *extra]
    if trusted:
        args += ["--trusted-proxy", trusted]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    p.stdin.write(data)
    p.stdin.flush()
    if keep_open:
        time.sleep(keep_open)
    p.stdin.close()
    out = p.stdout.read()
    rc = p.wait(timeout=30)
    with open(log) as f:
        f.seek(start)
        return rc, out, f.read()


rc, out, text = session(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 110\r\n" + LOGIN)
check(rc == 0 and b"+OK alice has 3 messages" in out and out.startswith(b"+OK pop3d ready"),
      f"v1: the session after the header ({rc})")
check("login: user=alice peer=203.0.113.7 " in text and "peer=127.0.0.5" not in text,
      "v1: the client's address in every log line")
rc, out, text = session(V2_TCP6 + LOGIN)
check(rc == 0 and "login: user=alice peer=2001:db8::7 " in text, "v2 TCP6: the client's address")
# A dual-stack proxy's IPv4 client (v4-mapped) is that IPv4 address, as from the socket.
rc, out, text = session(b"PROXY TCP6 ::ffff:203.0.113.8 ::ffff:127.0.0.1 40000 110\r\n" + LOGIN)
check(rc == 0 and "login: user=alice peer=203.0.113.8 " in text and "::ffff" not in text,
      "v1 TCP6 v4-mapped: the IPv4 address")
rc, out, text = session(v2(1, 0x21, socket.inet_pton(socket.AF_INET6, "::ffff:203.0.113.9") +
                           socket.inet_pton(socket.AF_INET6, "::1") + b"\x9c\x40\x00\x6e") + LOGIN)
check(rc == 0 and "login: user=alice peer=203.0.113.9 " in text and "::ffff" not in text,
      "v2 TCP6 v4-mapped: the IPv4 address")
rc, out, text = session(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 110\r\n" + LOGIN,
                        peer="[0000:0000:0000:0000:0000:ffff:7f00:0005]")
check(rc == 0 and "login: user=alice peer=203.0.113.7 " in text,
      "socat's bracketed v4-mapped proxy address is trusted as 127.0.0.5")
rc, out, text = session(v2(0, 0x00, b""))
check(rc == 1 and out == b"+OK pop3d ready\r\n" and "peer=127.0.0.5" in text,
      "v2 LOCAL (a health check): greeted, the proxy's own address")
rc, out, text = session(b"PROXY UNKNOWN\r\n" + LOGIN)
check(rc == 0 and "login: user=alice peer=127.0.0.5 " in text, "v1 UNKNOWN: the proxy's address")

for name, data, why in (("no header", LOGIN, "no PROXY header"),
                        ("malformed v1", b"PROXY TCP4 203.0.113.7 127.0.0.1 40000\r\n" + LOGIN,
                         "v1 line without six fields"),
                        ("bad v2 version", SIG + b"\x11\x11\x00\x00" + LOGIN, "version"),
                        ("cut short", V2_TCP4[:20], "connection closed before")):
    rc, out, text = session(data)
    check(rc == 1 and out == b"" and why in text and "login:" not in text,
          f"trusted peer, {name}: closed with no greeting, logged")

t0 = time.monotonic()
rc, out, text = session(b"PROXY TCP4 203.0.113.7", keep_open=7)
check(out == b"" and "timeout waiting for the PROXY header" in text and time.monotonic() - t0 < 12,
      "trusted peer, a header that never ends: closed after the PROXY timeout")

rc, out, text = session(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 110\r\n" + LOGIN,
                        peer="127.0.0.5", trusted="10.99.0.0/16")
check(b"-ERR unknown command\r\n" in out and "login: user=alice peer=127.0.0.5 " in text,
      "untrusted peer: a PROXY line is an unknown command, the address stays")
rc, out, text = session(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 110\r\n" + LOGIN, trusted=None)
check(b"-ERR unknown command\r\n" in out, "no --trusted-proxy: nothing is parsed")

rc, out, _ = session(V2_TCP4 + LOGIN, extra=["--tls-only"])
check(b"-ERR [AUTH] Plaintext authentication disallowed" in out and b"alice has" not in out,
      "--tls-only: a remote client behind the proxy is refused USER")
rc, out, _ = session(V2_TLS + LOGIN, extra=["--tls-only"])
check(b"+OK alice has 3 messages" in out, "--tls-only: the v2 SSL TLV says TLS, USER accepted")

# Over TCP: socat on 127.0.0.1, the header and the commands in one write.
box = os.path.join(d, "alice.mbox")
with open(box, "wb") as f:
    f.write(demo)
P.give_to_server(d)
args = ["--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u.mbox"), "--log", log,
        "--login-delay", "0", "--trusted-proxy", "127.0.0.1", *P.root_args(), *P.state_args()]
start = os.path.getsize(log)
with D.socat(d, args) as fe:
    c = socket.create_connection(("127.0.0.1", fe.port), timeout=30)
    c.sendall(V2_TCP4 + LOGIN)
    got = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk
    c.close()
deadline = time.monotonic() + 15
while True:
    with open(log) as f:
        f.seek(start)
        text = f.read()
    if "session end:" in text or time.monotonic() > deadline:
        break
    time.sleep(0.05)
check(b"+OK alice has 3 messages" in got and got.endswith(b"signing off (3 messages left)\r\n"),
      "socat: a v2 header and the commands in one write")
check("login: user=alice peer=203.0.113.9 " in text, "socat: the client's address logged")

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
