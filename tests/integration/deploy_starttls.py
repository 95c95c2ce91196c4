"""POP3 with STARTTLS (STLS) on port 110 through stunnel's protocol = pop3,
from the shipped files, each run for real on a free port of 127.0.0.1:

- stunnel/pop3-starttls.conf: stunnel as a daemon (kept in the foreground) -> pop3d;
- xinetd.d/pop3-starttls: xinetd -> stunnel in inetd mode
  (stunnel/inetd/pop3-starttls.conf) -> pop3d;
- systemd/pop3-starttls.socket + pop3-starttls@.service: what systemd does
  with Accept=yes (systemd-socket-activate) -> stunnel in inetd mode -> pop3d;
  both units pass `systemd-analyze verify` without a word.

On each: before TLS, the greeting is pop3d's own plus " + stunnel", CAPA is
stunnel's and offers STLS alone, and a client that sends anything else than
STLS is disconnected before pop3d sees a command (pop3d logs no login and no
failed login). After STLS, CAPA is pop3d's and offers USER and SASL PLAIN:
--tls-only, which every shipped command line sets, counts the connection as
encrypted.

Clients doing STARTTLS, each checking the server's certificate: Python's
poplib (stls(), then STAT, LIST, UIDL, RETR of every message byte for byte,
DELE), curl --ssl-reqd pop3:// (every message byte for byte), fetchmail
(sslproto TLS1.2+ without ssl: STARTTLS, required) and mpop
(tls_starttls on), both delivering every message byte-identical apart from
their Received: header. curl without --ssl-reqd is refused, and its trace
shows it sent no password.
"""
import os
import poplib
import random
import re
import shlex
import socket
import subprocess

import deploy_common as D
import pop3lib as P

ROOT = D.ROOT
d = D.fresh_dir("deploy-starttls")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
pem, cert = D.make_certificate(d)
rng = random.Random(110995)
originals = D.generated_messages(rng, 30)
D.write_mailbox(box, originals)
log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)

STUNNEL_CAPA = b"+OK Stunnel capability list follows\r\nSTLS\r\n.\r\n"
PLAIN = "AGFsaWNlAHNlY3JldA=="  # base64 of "\0alice\0secret"


# ---- the shipped files ----

def shipped(rel):
    return D.read(os.path.join(ROOT, rel)).decode()


for rel in ("stunnel/pop3-starttls.conf", "stunnel/inetd/pop3-starttls.conf"):
    text = shipped(rel)
    assert D.get_option(text, "protocol") == "pop3", rel
    assert D.get_option(text, "exec") == D.INSTALLED_POP3D, rel
    exec_args = shlex.split(D.get_option(text, "execArgs"))
    assert exec_args[0] == "pop3d" and "--tls-only" in exec_args, (rel, exec_args)
    assert D.get_option(text, "syslog") == "yes", rel
daemon_text = shipped("stunnel/pop3-starttls.conf")
assert D.get_option(daemon_text, "accept") == "110"
D.stunnel_foreground(daemon_text)   # asserts that the shipped one forks
assert "accept" not in re.findall(r"^(\w+)\s*=", shipped("stunnel/inetd/pop3-starttls.conf"),
                                  re.M), "an accept line would take stunnel out of inetd mode"
xinetd_text = shipped("xinetd.d/pop3-starttls")
assert D.get_option(xinetd_text, "server_args") == "/etc/stunnel/inetd/pop3-starttls.conf"
assert re.search(r"^service pop3\s*$", xinetd_text, re.M), "not the pop3 service (port 110)"
sock = os.path.join(ROOT, "systemd", "pop3-starttls.socket")
svc = os.path.join(ROOT, "systemd", "pop3-starttls@.service")
assert D.unit_value(sock, "ListenStream") == "110" and D.unit_value(sock, "Accept") == "yes"
assert D.unit_value(sock, "Conflicts") == "pop3d.socket"
for key, want in (("StandardInput", "socket"), ("StandardOutput", "socket"),
                  ("StandardError", "journal")):
    assert D.unit_value(svc, key) == want, key
unit_cmd = D.unit_command(svc)
assert unit_cmd[1:] == ["/etc/stunnel/inetd/pop3-starttls.conf"], unit_cmd
assert os.access(unit_cmd[0], os.X_OK), f"{unit_cmd[0]} is not there"

units = os.path.join(d, "units")
os.makedirs(units)
for name in ("pop3-starttls.socket", "pop3-starttls@.service", "pop3d.socket",
             "pop3d@.service"):
    D.write(os.path.join(units, name),
            shipped("systemd/" + name).replace(D.INSTALLED_POP3D, D.POP3D))
man = os.path.join(d, "man", "man8")
os.makedirs(man)
D.write(os.path.join(man, "pop3d.8"), D.read(os.path.join(ROOT, "pop3d.8")))
r = subprocess.run(["systemd-analyze", "verify", "pop3-starttls.socket",
                    "pop3-starttls@.service"], cwd=units, capture_output=True, text=True,
                   timeout=60, env=dict(os.environ, MANPATH=os.path.join(d, "man") +
                                        ":/usr/share/man"))
assert r.returncode == 0 and not r.stdout and not r.stderr, \
    f"systemd-analyze verify (exit {r.returncode}):\n{r.stdout}{r.stderr}"


# ---- private copies for the test ----

def with_test_args(text):
    text = D.set_option(text, "cert", pem)
    text = D.set_option(text, "exec", D.POP3D)
    return D.set_option(text, "execArgs",
                        D.get_option(text, "execArgs") + " " + D.no_spaces(args))


def inetd_config(sub):
    path = os.path.join(sub, "pop3-starttls-inetd.conf")   # a private copy
    D.write(path, with_test_args(shipped("stunnel/inetd/pop3-starttls.conf")))
    return path


def stunnel_daemon(sub):
    port = P.free_port()
    text = with_test_args(D.stunnel_foreground(daemon_text))
    text = D.set_option(text, "pid", os.path.join(sub, "stunnel.pid"))
    text = D.set_option(text, "syslog", "no")
    text = D.set_option(text, "accept", f"127.0.0.1:{port}")
    text = text.replace("[pop3-starttls]",
                        f"output = {os.path.join(sub, 'stunnel.log')}\n\n[pop3-starttls]", 1)
    conf = os.path.join(sub, "pop3-starttls.conf")
    D.write(conf, text)
    return D.FrontEnd(["stunnel", conf], port, os.path.join(sub, "stunnel.out"))


def subdir(name):
    p = os.path.join(d, name)
    os.makedirs(p)
    return p


# ---- what a client sees before TLS ----

def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def until_closed(s):
    """Everything the server sends until it closes (a reset counts as closed)."""
    out = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk
    except ConnectionResetError:
        return out


def before_tls(port):
    """Greeting and CAPA come from stunnel; a command other than STLS (USER,
    and a pipelined PASS behind it) ends the connection without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        greeting = recv_line(s)
        assert greeting == b"+OK pop3d ready + stunnel\r\n", greeting
        s.sendall(b"CAPA\r\n")
        capa = b""
        while not capa.endswith(b"\r\n.\r\n"):
            chunk = s.recv(4096)
            assert chunk, f"closed during CAPA: {capa!r}"
            capa += chunk
        assert capa == STUNNEL_CAPA, capa
        s.sendall(b"USER alice\r\nPASS secret\r\n")
        assert until_closed(s) == b"", "an answer to USER before STLS"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        recv_line(s)
        s.sendall(f"AUTH PLAIN {PLAIN}\r\n".encode())
        assert until_closed(s) == b"", "an answer to AUTH before STLS"


def starttls_poplib(port, msgs, delete=()):
    """poplib's stls() (CAPA, then STLS), pop3d's CAPA after it, the whole
    maildrop byte for byte; DELE the 1-based DELETE; QUIT."""
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    assert c.getwelcome() == b"+OK pop3d ready + stunnel"
    assert c.stls(D.ssl_context(cert)) == b"+OK Stunnel starts TLS negotiation"
    capa = c.capa()
    assert "USER" in capa and "PLAIN" in capa.get("SASL", []), capa
    assert capa.get("IMPLEMENTATION") == ["pop3d"], capa
    c.user("alice")
    c.pass_("secret")
    assert c.stat() == (len(msgs), sum(len(P.wire_form(m)) for m in msgs))
    _, listing, _ = c.list()
    assert [int(x.split()[1]) for x in listing] == [len(P.wire_form(m)) for m in msgs]
    _, uidls, _ = c.uidl()
    assert len({u.split()[1] for u in uidls}) == len(msgs)
    for n, m in enumerate(msgs, 1):
        resp, lines, octets = c.retr(n)
        body = b"".join(line + b"\r\n" for line in lines)
        assert octets == len(body) and body == P.wire_form(m), f"RETR {n} differs"
    for n in delete:
        c.dele(n)
    assert c.quit().startswith(b"+OK")
    D.wait_sessions_gone(d)
    return [m for n, m in enumerate(msgs, 1) if n not in set(delete)]


logins = 0  # sessions that logged in, as pop3d's log must count them

# 1. systemd: the socket unit's service -> stunnel (inetd mode) -> pop3d; poplib.
sub = subdir("systemd")
with D.socket_activated(sub, [unit_cmd[0], inetd_config(sub)]) as fe:
    before_tls(fe.port)
    kept = starttls_poplib(fe.port, originals, delete=[2, 5, 30])
    logins += 1
    assert D.mailbox_messages(box) == kept, "DELE over STARTTLS did not remove exactly those"

# 2. xinetd -> stunnel (inetd mode) -> pop3d; curl.
sub = subdir("xinetd")
xinetd_args = D.read(os.path.join(ROOT, "xinetd.d", "pop3-starttls")).decode()
with D.xinetd(sub, os.path.join(ROOT, "xinetd.d", "pop3-starttls"),
              D.get_option(xinetd_args, "server"), inetd_config(sub)) as fe:
    before_tls(fe.port)
    base = f"pop3://127.0.0.1:{fe.port}"
    curl = ["curl", "-sS", "--max-time", "60", "--cacert", cert, "-u", "alice:secret"]
    listing = os.path.join(sub, "list.out")
    D.run_client([*curl, "--ssl-reqd", "-o", listing, base + "/"],
                 os.path.join(sub, "curl.log"), settle=d)
    assert D.read(listing).decode().split("\r\n")[:-1] == \
        [f"{n} {len(P.wire_form(m))}" for n, m in enumerate(kept, 1)], "LIST via curl"
    D.run_client([*curl, "--ssl-reqd", f"{base}/[1-{len(kept)}]",
                  "-o", os.path.join(sub, "msg_#1")], os.path.join(sub, "curl.log"), settle=d)
    for n, m in enumerate(kept, 1):
        assert D.read(os.path.join(sub, f"msg_{n}")) == P.wire_form(m), f"curl: message {n}"
    logins += 2
    # Without --ssl-reqd curl tries USER in clear text: refused, and nothing
    # it sent before the connection ended carries the password.
    trace = os.path.join(sub, "plain.trace")
    rc = D.run_client([*curl, "--trace-ascii", trace, "-o", os.path.join(sub, "plain.out"),
                       base + "/"], os.path.join(sub, "curl-plain.log"), ok=(56, 67), settle=d)
    sent = "".join(re.findall(r"^=> Send header.*\n((?:[0-9a-f]{4}: .*\n)+)",
                              D.read(trace).decode(errors="replace"), re.M))
    assert "CAPA" in sent, sent
    for secret in ("PASS", "secret", PLAIN, "AUTH"):
        assert secret not in sent, f"curl sent {secret!r} before TLS:\n{sent}"

# 3. stunnel as a daemon (/etc/init.d/stunnel4) -> pop3d; fetchmail and mpop.
sub = subdir("stunnel")
with stunnel_daemon(sub) as fe:
    assert int(D.read(os.path.join(sub, "stunnel.pid"))) > 0
    before_tls(fe.port)

    home = os.path.join(sub, "fetchmail-home")
    os.makedirs(home, mode=0o700)
    out = os.path.join(sub, "fetchmail-out")
    os.makedirs(out)
    deliver = os.path.join(sub, "deliver.sh")
    D.write(deliver, '#!/bin/sh\nn=$(ls "$1" | wc -l)\nexec cat >"$1/$(printf %06d "$n")"\n',
            0o755)
    rc_file = os.path.join(sub, "fetchmailrc")
    # No "ssl": STARTTLS on the POP3 port; sslproto TLS1.2+ makes it required.
    D.write(rc_file, f"""set no syslog
poll 127.0.0.1 protocol pop3 service {fe.port} timeout 30
  user "alice" there with password "secret"
  norewrite sslproto TLS1.2+ sslcertck sslcertfile {cert} sslcommonname localhost
  mda "{deliver} {out}"
""", 0o600)
    D.run_client(["fetchmail", "-f", rc_file, "--nodetach", "--nosyslog", "-v", "--keep",
                  "--all", "--pidfile", os.path.join(sub, "fetchmail.pid")],
                 os.path.join(sub, "fetchmail.log"), env=dict(os.environ, FETCHMAILHOME=home,
                                                               HOME=home), settle=d)
    flog = D.read(os.path.join(sub, "fetchmail.log")).decode(errors="replace")
    assert re.search(r"> STLS\s*$", flog, re.M), "fetchmail did not do STLS:\n" + flog[-2000:]
    got = [D.read(os.path.join(out, f)) for f in sorted(os.listdir(out))]
    assert D.check_delivered(got, kept, {"received"}) == D.ids_of(kept), "fetchmail"
    logins += 1

    target = D.make_maildir(os.path.join(sub, "mpop-maildir"))
    rc_file = os.path.join(sub, "mpoprc")
    D.write(rc_file, f"""account test
host 127.0.0.1
port {fe.port}
tls on
tls_starttls on
tls_trust_file {cert}
auth user
user alice
password secret
timeout 30
uidls_file {sub}/uidls
delivery maildir {target}
""", 0o600)
    D.run_client(["mpop", "-Q", "-C", rc_file, "--keep", "--only-new=off", "test"],
                 os.path.join(sub, "mpop.log"), settle=d)
    got = D.maildir_messages(target)
    D.same_messages(D.check_delivered(got, kept, {"received"}), kept, "mpop")
    logins += 1
    text = D.wait_log(log, "end=quit", logins)

assert D.mailbox_messages(box) == kept, "a keep run changed the mailbox"
assert text.count("login: user=alice peer=127.0.0.1 ") == logins, text[-3000:]
assert text.count("end=quit") == logins, text[-3000:]
assert "authentication failed" not in text, "a login attempt reached pop3d before TLS"
print(f"ok: STARTTLS through stunnel's protocol = pop3 (daemon, xinetd, systemd socket): "
      f"poplib, curl, fetchmail, mpop; {logins} logins, none in clear text")
