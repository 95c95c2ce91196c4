"""stunnel/pop3s.conf run by a real stunnel (foreground, pid file and log in
its pop3lib.tmpdir(), a self-signed certificate made here, 127.0.0.1 on a free port),
and the TLS policy its execArgs set (--tls-only):

- through stunnel: TLS with the certificate checked; CAPA offers USER and
  SASL PLAIN; USER/PASS and AUTH PLAIN log in; the peer in the log is the
  client's address as stunnel passes it (REMOTE_HOST); pid file written;
- the same pop3d command line behind a plain-text front end that is not
  loopback TCP (socat: a socket pair, no REMOTE_HOST): CAPA offers neither
  USER nor SASL, USER, PASS and AUTH are refused with -ERR [AUTH], nothing
  is logged in, and the session still ends cleanly with QUIT.
"""
import base64
import os
import poplib
import random
import re
import shlex

import deploy_common as D

d = D.fresh_dir("deploy-stunnel")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
pem, cert = D.make_certificate(d)
msgs = D.generated_messages(random.Random(995), 4)
D.write_mailbox(box, msgs)

log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
shipped = D.read(os.path.join(D.ROOT, "stunnel", "pop3s.conf")).decode()
assert D.get_option(shipped, "exec") == D.INSTALLED_POP3D
exec_args = shlex.split(D.get_option(shipped, "execArgs"))
assert exec_args[0] == "pop3d" and "--tls-only" in exec_args, exec_args

with D.stunnel(d, pem, args) as fe:
    assert int(D.read(os.path.join(d, "stunnel.pid"))) > 0
    c = poplib.POP3_SSL("127.0.0.1", fe.port, context=D.ssl_context(cert), timeout=30)
    capa = c.capa()
    assert "USER" in capa and "PLAIN" in capa.get("SASL", []), capa
    c.user("alice")
    c.pass_("secret")
    assert c.stat() == (4, sum(len(D.P.wire_form(m)) for m in msgs))
    c.quit()
    D.wait_sessions_gone(d)

    c = poplib.POP3_SSL("127.0.0.1", fe.port, context=D.ssl_context(cert), timeout=30)
    plain = base64.b64encode(b"\0alice\0secret").decode()
    assert c._shortcmd(f"AUTH PLAIN {plain}").startswith(b"+OK"), "AUTH PLAIN over POP3S"
    c.quit()
    text = D.wait_log(log, "session end:", 2)
assert text.count("login: user=alice peer=127.0.0.1 messages=4 ") == 2, text
assert "[AUTH]" not in text

# The same command line (shipped execArgs + the test's) without stunnel.
plain_args = exec_args[1:] + args
with D.socat(d, plain_args) as fe:
    c = poplib.POP3("127.0.0.1", fe.port, timeout=30)
    capa = c.capa()
    assert "USER" not in capa and "SASL" not in capa, capa
    for cmd in ("USER alice", "PASS secret", "AUTH PLAIN " + plain):
        try:
            c._shortcmd(cmd)
            raise AssertionError(f"{cmd.split()[0]} accepted on a plain-text connection")
        except poplib.error_proto as e:
            assert str(e).startswith("b'-ERR [AUTH]"), e
    c.quit()
    text = D.wait_log(log, "session end:", 3)
assert text.count("login: ") == 2, "a plain-text login got through --tls-only"
assert re.search(r"session end: user=- peer=127\.0\.0\.1 .* end=quit", text), text
print("ok: stunnel/pop3s.conf with a real stunnel; --tls-only refuses plain text")
