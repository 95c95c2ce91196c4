"""The shipped xinetd services, run by a real xinetd in the foreground with a
private configuration that holds only that service (on a free port of
127.0.0.1, UNLISTED):

- xinetd.d/pop3 and xinetd.d/pop3s load without a warning from xinetd;
- xinetd -> pop3d: a session works with the shipped server_args (the test's
  appended), the log names the peer 127.0.0.1 and a failed login in the
  stable format, xinetd sees exit status 0 after QUIT;
- xinetd -> stunnel (inetd mode, stunnel/inetd/pop3s.conf) -> pop3d with the
  shipped --tls-only: TLS with the certificate checked, USER offered and
  accepted (stunnel's exec counts as encrypted), the peer taken from stunnel.
"""
import os
import poplib
import random
import re

import deploy_common as D


def xinetd_problems(fe):
    """xinetd's complaints about its configuration (bad attributes, unknown
    values ...): every WARNING or ERROR line but the one it writes at exit."""
    text = D.read(fe.xinetd_log).decode(errors="replace")
    assert "Started working: 1 available service" in text, text
    return [line for line in text.splitlines()
            if re.search(r"WARNING|ERROR", line) and "Exiting..." not in line]


d = D.fresh_dir("deploy-xinetd")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
pem, cert = D.make_certificate(d)
msgs = D.generated_messages(random.Random(110), 5)
D.write_mailbox(box, msgs)

log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
plain_dir = os.path.join(d, "pop3")
tls_dir = os.path.join(d, "pop3s")
os.makedirs(plain_dir)
os.makedirs(tls_dir)

# The shipped files name the installed programs.
assert D.get_option(D.read(os.path.join(D.ROOT, "xinetd.d", "pop3")).decode(),
                    "server") == D.INSTALLED_POP3D

with D.xinetd_pop3(plain_dir, args) as fe:
    c = poplib.POP3("127.0.0.1", fe.port, timeout=30)
    c.user("alice")
    try:
        c.pass_("wrong")
        raise AssertionError("a wrong password was accepted")
    except poplib.error_proto as e:
        assert str(e).startswith("b'-ERR [AUTH]"), e
    c.user("alice")
    c.pass_("secret")
    assert c.stat()[0] == 5
    c.quit()
    D.wait_sessions_gone(d)
    text = D.wait_log(log, "session end:")
    service_log = D.wait_log(os.path.join(plain_dir, "xinetd-service.log"), "EXIT:")
    plain_problems = xinetd_problems(fe)

assert "authentication failed: user=alice peer=127.0.0.1 method=USER" in text, text
assert re.search(r"login: user=alice peer=127\.0\.0\.1 messages=5 ", text), text
assert re.search(r"session end: user=alice peer=127\.0\.0\.1 .* end=quit", text), text
assert re.search(r"EXIT: pop3 status=0 ", service_log), service_log
assert not plain_problems, f"xinetd.d/pop3: {plain_problems}"

with D.xinetd_pop3s(tls_dir, pem, args) as fe:
    c = poplib.POP3_SSL("127.0.0.1", fe.port, context=D.ssl_context(cert), timeout=30)
    capa = c.capa()
    assert "USER" in capa and "PLAIN" in capa.get("SASL", []), capa
    c.user("alice")
    c.pass_("secret")
    assert c.stat()[0] == 5
    c.quit()
    text = D.wait_log(log, "session end:", 2)
    service_log = D.wait_log(os.path.join(tls_dir, "xinetd-service.log"), "EXIT:")
    tls_problems = xinetd_problems(fe)

# stunnel ran pop3d with the shipped --tls-only; the login was accepted.
assert text.count("login: user=alice peer=127.0.0.1 ") == 2, text
assert re.search(r"EXIT: pop3s status=0 ", service_log), service_log
assert not tls_problems, f"xinetd.d/pop3s: {tls_problems}"
print("ok: xinetd.d/pop3 and xinetd.d/pop3s with a real xinetd")
