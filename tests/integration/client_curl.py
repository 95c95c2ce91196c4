"""curl, pop3:// through xinetd (xinetd.d/pop3) -> pop3d and pop3s:// through
xinetd (xinetd.d/pop3s) -> stunnel (inetd mode) -> pop3d.

For each: list (sizes as RETR delivers them), retrieve every message (curl
reuses one session for a URL range and writes what RETR sent, unstuffed, CRLF
line ends: byte-identical to the stored message in wire form), delete a
selection and check the mbox afterwards.
"""
import os
import random

import deploy_common as D
import pop3lib as P

d = D.fresh_dir("client-curl")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = D.mailbox_path(maildir)
pem, cert = D.make_certificate(d)

rng = random.Random(6749)
originals = D.generated_messages(rng, D.scaled(200))
D.write_mailbox(box, originals)


def curl(name, url, *options):
    out = os.path.join(d, name + ".out")
    D.run_client(["curl", "-sS", "--max-time", "60", "--cacert", cert, "-u", "alice:secret",
                  "-o", out, *options, url], os.path.join(d, name + ".log"), settle=d)
    return D.read(out) if os.path.exists(out) else b""


def check(base, name, msgs, delete):
    """List, retrieve all, delete the 1-based numbers DELETE in one session."""
    listing = curl(name + "-list", base + "/").decode().split("\r\n")
    assert listing[-1] == "", "LIST output does not end in CRLF"
    assert [tuple(map(int, line.split())) for line in listing[:-1]] == \
        [(n, len(P.wire_form(m))) for n, m in enumerate(msgs, 1)], "LIST differs"

    outdir = os.path.join(d, name + "-retr")
    os.makedirs(outdir)
    # One URL range, one session (curl reuses the connection): msg_1 ... msg_N.
    D.run_client(["curl", "-sS", "--max-time", "60", "--cacert", cert, "-u", "alice:secret",
                  f"{base}/[1-{len(msgs)}]", "-o", os.path.join(outdir, "msg_#1")],
                 os.path.join(d, name + "-retr.log"), settle=d)
    for n, m in enumerate(msgs, 1):
        got = D.read(os.path.join(outdir, f"msg_{n}"))
        assert got == P.wire_form(m), f"{name}: message {n} differs"

    # DELE with -I (no transfer); the range shares one session, deletions
    # apply at its QUIT.
    ranges = ",".join(str(n) for n in delete)
    curl(name + "-dele", f"{base}/{{{ranges}}}", "-X", "DELE", "-I")
    return [m for n, m in enumerate(msgs, 1) if n not in set(delete)]


log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
plain_dir = os.path.join(d, "xinetd-pop3")
tls_dir = os.path.join(d, "xinetd-pop3s")
os.makedirs(plain_dir)
os.makedirs(tls_dir)
with D.xinetd_pop3(plain_dir, args) as plain, D.xinetd_pop3s(tls_dir, pem, args) as tls:
    kept = check(f"pop3://127.0.0.1:{plain.port}", "pop3", originals,
                 [1, 2, len(originals) // 4, len(originals) - 1, len(originals)])
    assert D.mailbox_messages(box) == kept, "pop3:// DELE did not remove exactly those"

    kept = check(f"pop3s://127.0.0.1:{tls.port}", "pop3s", kept,
                 [1, len(originals) // 2, len(kept)])
    assert D.mailbox_messages(box) == kept, "pop3s:// DELE did not remove exactly those"

    # Deleting all of them leaves an empty maildrop.
    curl("pop3s-dele-all", f"pop3s://127.0.0.1:{tls.port}/[1-{len(kept)}]", "-X", "DELE", "-I")
    assert D.mailbox_messages(box) == []
    text = D.wait_log(log, "end=quit", 7)
    assert text.count("end=quit") == 7, text[-3000:]

print("ok: curl pop3:// (xinetd) and pop3s:// (xinetd + stunnel)")
