"""The shipped systemd units: systemd/pop3d.socket + pop3d@.service (port 110)
and systemd/pop3s.socket + pop3s@.service (port 995, stunnel in inetd mode).

- `systemd-analyze verify` accepts all four without a word (an unknown key,
  a bad value, a missing executable or a missing man page would be printed).
  The units name the installed paths; the check runs on copies whose
  /usr/local/sbin/pop3d is this repository's ./pop3d, with MANPATH leading to
  this repository's pop3d.8 (Documentation=man:pop3d(8) must resolve).
- What systemd does with them matters for a POP3 server: Accept=yes (one
  process per connection), the connection on stdin and stdout, and stderr in
  the journal, not on the client's socket.
- Both ExecStart commands serve a session when run the way systemd runs them
  (systemd-socket-activate --accept --inetd); client_poplib runs a full
  mailbox through them.
"""
import os
import poplib
import random
import shutil
import subprocess

import deploy_common as D

d = D.fresh_dir("deploy-systemd")
units = os.path.join(d, "units")
os.makedirs(units)
man8 = os.path.join(d, "man", "man8")
os.makedirs(man8)
shutil.copy(os.path.join(D.ROOT, "pop3d.8"), man8)

UNITS = ["pop3d.socket", "pop3d@.service", "pop3s.socket", "pop3s@.service"]
for name in UNITS:
    text = D.read(os.path.join(D.ROOT, "systemd", name)).decode()
    write_path = os.path.join(units, name)
    D.write(write_path, text.replace(D.INSTALLED_POP3D, D.POP3D))

for sock, port in (("pop3d.socket", "110"), ("pop3s.socket", "995")):
    path = os.path.join(D.ROOT, "systemd", sock)
    assert D.unit_value(path, "ListenStream") == port, sock
    assert D.unit_value(path, "Accept") == "yes", sock
for svc in ("pop3d@.service", "pop3s@.service"):
    path = os.path.join(D.ROOT, "systemd", svc)
    assert D.unit_value(path, "StandardInput") == "socket", svc
    assert D.unit_value(path, "StandardOutput") == "socket", svc
    # The default would be "inherit": stderr on the client's socket.
    assert D.unit_value(path, "StandardError") == "journal", svc
assert D.unit_command(os.path.join(D.ROOT, "systemd", "pop3d@.service"))[0] == \
    D.INSTALLED_POP3D

env = dict(os.environ, MANPATH=os.path.join(d, "man") + ":/usr/share/man")
r = subprocess.run(["systemd-analyze", "verify", *UNITS], cwd=units, env=env,
                   capture_output=True, text=True, timeout=60)
assert r.returncode == 0 and not r.stdout and not r.stderr, \
    f"systemd-analyze verify (exit {r.returncode}):\n{r.stdout}{r.stderr}"

# The ExecStart lines serve sessions, the way systemd starts them.
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
D.write_mailbox(os.path.join(maildir, "alice.mbox"), D.generated_messages(random.Random(3), 2))
log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
pem, cert = D.make_certificate(d)
with D.systemd_pop3d(d, args) as plain, D.systemd_pop3s(d, pem, args) as tls:
    for connect in (lambda: poplib.POP3("127.0.0.1", plain.port, timeout=30),
                    lambda: poplib.POP3_SSL("127.0.0.1", tls.port,
                                            context=D.ssl_context(cert), timeout=30)):
        c = connect()
        c.user("alice")
        c.pass_("secret")
        assert c.stat()[0] == 2
        c.quit()
        D.wait_sessions_gone(d)
    text = D.wait_log(log, "end=quit", 2)
assert text.count("login: user=alice peer=127.0.0.1 ") == 2, text
print("ok: systemd units verified and served through systemd-socket-activate")
