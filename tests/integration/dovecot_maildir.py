"""pop3d and Dovecot side by side on the same Maildir: STAT, LIST, UIDL
(Dovecot with pop3_uidl_format = %f) and every RETR and TOP identical octet
for octet, then the same DELEs leave the same messages.

The Maildir holds what real ones do: names with ",S=...,W=..." (Dovecot's,
Courier's) and without, in new/ and in cur/ with flags, stamps of 9 and 10
digits (delivery order is numeric), LF and CRLF files, mixed line ends and a
lone CR, dot lines to stuff, one second's deliveries told apart by their
microseconds (Dovecot's M99 before M100), files without a final newline (both servers add
CR LF before the terminating dot and do not count it in the size), a message
that is all header, and a large one.

What differs by design: the UIDL of a name longer than 70 characters (a
Dovecot name with a long host name). Dovecot's %f answers the whole name,
which RFC 1939 does not allow (1 to 70 characters); pop3d answers its
derived form (pop3d(8) MAILDIR), checked here to follow the RFC.

Dovecot's pop3 binary is run pre-authenticated on its own copy (it moves
what it read from new/ to cur/ with the S flag and writes its own files into
the Maildir), as bench/run.py does, never its service. Then pop3d serves the
copy Dovecot left behind: the same UIDLs after Dovecot's renames (mail moved
from Dovecot to pop3d keeps its UIDLs), and Dovecot's own files are no
messages.
"""
import os
import pwd
import random
import shutil
import subprocess
import sys

import pop3lib as P

DOVECOT = "/usr/lib/dovecot/pop3"
if not os.access(DOVECOT, os.X_OK):
    print(f"skipped: Dovecot is not installed ({DOVECOT}: apt-get install dovecot-pop3d)")
    sys.exit(77)

d = P.tmpdir("dovecot-maildir")


def message(n, body_lines, crlf=False, final_newline=True, headers=True):
    eol = b"\r\n" if crlf else b"\n"
    head = [b"From: sender%d@example.org" % n, b"To: alice@example.net",
            b"Subject: message %d" % n, b"Message-ID: <%d.dovecot@example.org>" % n]
    lines = (head + [b""] if headers else []) + body_lines
    out = eol.join(lines)
    return out + eol if final_newline else out


rng = random.Random(22)
dots = [b".", b"..", b".x", b"...three", b". space", b"", b"From here", b">From there", b"end"]
# (name in the Maildir, contents), the names in delivery order.
MESSAGES = [
    ("new/999999990.M1P100.host", message(1, [b"plain LF text", b"", b"second paragraph"])),
    ("cur/999999991.M2P100.host,S={S},W={W}:2,S", message(2, [b"a Dovecot name, seen"])),
    ("new/999999992.M3P100.host,S={S},W={W}", message(3, [b"CRLF file", b".dot"], crlf=True)),
    ("cur/999999993.M4P100.host:2,", message(4, dots)),
    ("new/999999994.M5P100.host", message(5, [b"no final newline"], final_newline=False)),
    ("cur/999999995.M6P100.host:2,RS",
     message(6, [b"CRLF, no final newline", b"."], crlf=True, final_newline=False)),
    ("new/999999996.M7P100.host",
     b"Subject: mixed\r\n\nCRLF and LF\r\nlone CR \r here\n.\r\n..\nlast\r\n"),
    ("new/999999997.M8P100.host", b"Subject: all header\nX-Empty:\n"),
    ("new/999999998.M9P100.host,S={S},W={W}", P.message(rng, 9, size=1_500_000)),
    ("new/1000000000.M10P100.host", P.message(rng, 10, size=800_000)),
    ("cur/1000000001.M11P100.host:2,S", message(11, [b"x" * 5000, b".", b"y" * 999])),
    ("new/1000000002.M12P100.host", message(12, [b"dot at the end", b"."])),
    ("new/1000000003.M13P100V000000000000FD01I0000000012345678.mx-42.mail.customer-"
     "example.org,S={S},W={W}", message(13, [b"a long name"])),
    # One second's deliveries, ordered by their microseconds (M99 before M100).
    ("new/1000000004.M99P100.host", message(14, [b"99 microseconds"])),
    ("cur/1000000004.M100P100.host:2,S", message(15, [b"100 microseconds"])),
    ("new/1000000004.V803I1a2bM500.host", message(16, [b"Postfix's name, 500 microseconds"])),
]
LONG = 13   # the message whose name is longer than a UIDL may be


def make_maildir(path):
    """The Maildir of MESSAGES at PATH; returns the names ("new/NAME", ...)."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(path, sub))
    names = []
    for name, data in MESSAGES:
        name = name.replace("{S}", str(len(data))).replace("{W}", str(P.maildir_vsize(data)))
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
        names.append(name)
    return names


def unstuff(lines):
    return [line[1:] if line.startswith(b".") else line for line in lines]


def first_diff(a, b):
    """Where two answers (lists of lines) first differ."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"line {i + 1}: pop3d {x[:120]!r}, Dovecot {y[:120]!r}"
    return f"pop3d sent {len(a)} lines, Dovecot {len(b)}"


N = len(MESSAGES)
# STAT, LIST, UIDL, every RETR and TOP n 2, then the DELEs and QUIT.
DELETE = [2, 5, 9, 12]
COMMANDS = (["STAT", "LIST", "UIDL"] + [f"RETR {n}" for n in range(1, N + 1)] +
            [f"TOP {n} 2" for n in range(1, N + 1)] + [f"DELE {n}" for n in DELETE] + ["QUIT"])
MULTI = ("LIST", "UIDL", "RETR", "TOP")


def responses(out, commands, skip):
    """OUT split into one response per command (after SKIP lines: the
    greeting and the login): (first line, the lines of a multi-line answer as
    sent, stuffed, the terminating line left out)."""
    lines = out.split(b"\r\n")
    assert lines[-1] == b"", f"output does not end in CRLF: {out[-200:]!r}"
    lines = lines[skip:-1]
    got, i = [], 0
    for c in commands:
        assert i < len(lines), f"no answer to {c}"
        first, body = lines[i], []
        i += 1
        if first.startswith(b"+OK") and c.split()[0] in MULTI:
            while lines[i] != b".":
                body.append(lines[i])
                i += 1
            i += 1
        got.append((first, body))
    assert i == len(lines), f"more output than answers: {lines[i:i + 3]!r}"
    return got


def as_nobody():
    if P.as_root():
        pw = pwd.getpwnam("nobody")
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    return []


def run(argv, commands, env=None):
    p = subprocess.run(argv, input="".join(c + "\r\n" for c in commands).encode(),
                       capture_output=True, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def run_pop3d(maildir_parent):
    P.give_to_server(maildir_parent)
    log = os.path.join(d, "pop3d.log")
    rc, out, err = run([P.POP3D, "--passwd", P.PASSWD, "--mailbox",
                        os.path.join(maildir_parent, "%u/"), "--log", log, "--login-delay", "0",
                        *P.root_args(), *P.state_args()],
                       ["USER alice", "PASS secret"] + COMMANDS)
    with open(log, errors="replace") as f:
        text = f.read()
    assert rc == 0, f"pop3d exited {rc}: {err}\n{text[-2000:]}"
    return responses(out, ["USER", "PASS"] + COMMANDS, 1)[2:], text


def run_dovecot(home):
    """Dovecot's pop3, pre-authenticated as the owner of HOME (nobody as
    root), with HOME/Maildir and its index beside it."""
    for sub in ("base", "state", "index"):
        os.makedirs(os.path.join(home, sub))
    conf = os.path.join(home, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"protocols = pop3\nssl = no\nbase_dir = {home}/base\nstate_dir = {home}/state\n"
                f"mail_location = maildir:{home}/Maildir:INDEX={home}/index\n"
                f"pop3_uidl_format = %f\n")
    P.give_to_server(home)
    user = pwd.getpwuid(os.stat(home).st_uid).pw_name
    env = {"USER": user, "HOME": home, "PATH": "/usr/bin:/bin"}
    # Dovecot wants a pipe or a socket on stdin (epoll), not a file: run() gives a pipe.
    rc, out, err = run([*as_nobody(), DOVECOT, "-c", conf], COMMANDS, env=env)
    assert rc == 0, f"Dovecot's pop3 exited {rc}: {err}"
    assert "Error" not in err, f"Dovecot logged an error: {err}"
    return responses(out, COMMANDS, 0)


pop3d_parent = os.path.join(d, "pop3d")
dovecot_home = os.path.join(d, "dovecot")
files = make_maildir(os.path.join(pop3d_parent, "alice"))
make_maildir(os.path.join(dovecot_home, "Maildir"))
names = P.maildir_uidls(os.path.join(pop3d_parent, "alice"))

ours, _ = run_pop3d(pop3d_parent)
theirs = run_dovecot(dovecot_home)


def same(what, a, b):
    assert a == b, f"{what}: pop3d {a!r}, Dovecot {b!r}"


stat, listing, uidl = ours[0], ours[1], ours[2]
same("STAT", stat[0], theirs[0][0])
same("LIST", listing[1], theirs[1][1])
uidls = [u.split()[1].decode() for u in uidl[1]]
same("UIDL numbers", [u.split()[0] for u in uidl[1]], [u.split()[0] for u in theirs[2][1]])
for n, (u, t, name) in enumerate(zip(uidls, theirs[2][1], names), 1):
    if n == LONG:
        same(f"Dovecot's UIDL {n}", t.split()[1].decode(), name)
        assert len(name) > 70 and u != name, f"UIDL {n}: {u}"
        assert 1 <= len(u) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in u), u
    else:
        same(f"UIDL {n}", u, t.split()[1].decode())
        same(f"UIDL {n} is the name up to ':'", u, name)
for k, n in enumerate(range(1, N + 1)):
    (ofirst, obody), (tfirst, tbody) = ours[3 + k], theirs[3 + k]
    assert ofirst.startswith(b"+OK") and tfirst.startswith(b"+OK"), (n, ofirst, tfirst)
    # The octets of the answer: the count in +OK where both give one, and the text.
    same(f"RETR {n} size", ofirst.split()[1], tfirst.split()[1])
    assert obody == tbody, f"RETR {n} differs: {first_diff(obody, tbody)}"
    # The size LIST gave is what RETR sent (unstuffed, without the CR LF a
    # file without a final newline gets).
    sent = sum(len(line) + 2 for line in unstuff(obody))
    size = int(listing[1][k].split()[1])
    data = MESSAGES[k][1]
    assert sent == size + (0 if data.endswith(b"\n") else 2), (n, sent, size)
for k, n in enumerate(range(1, N + 1)):
    (ofirst, obody), (tfirst, tbody) = ours[3 + N + k], theirs[3 + N + k]
    assert ofirst.startswith(b"+OK") and tfirst.startswith(b"+OK"), (n, ofirst, tfirst)
    assert obody == tbody, f"TOP {n} 2 differs: {first_diff(obody, tbody)}"
for k, n in enumerate(DELETE):
    o, t = ours[3 + 2 * N + k][0], theirs[3 + 2 * N + k][0]
    assert o.startswith(b"+OK") and t.startswith(b"+OK"), (n, o, t)
assert ours[-1][0].startswith(b"+OK") and theirs[-1][0].startswith(b"+OK")

kept = [u for i, u in enumerate(names, 1) if i not in DELETE]
same("the messages left", P.maildir_uidls(os.path.join(pop3d_parent, "alice")), kept)
same("the messages Dovecot left", P.maildir_uidls(os.path.join(dovecot_home, "Maildir")), kept)
# pop3d renames nothing: every kept file is where it was, under its name.
assert sorted(P.maildir_contents(os.path.join(pop3d_parent, "alice"))) == \
    sorted(n for i, n in enumerate(files, 1) if i not in DELETE)

# pop3d on the Maildir Dovecot left (files moved to cur/ with flags, its
# dovecot-uidlist and dovecot-uidvalidity beside them): the messages kept,
# with the UIDLs, sizes and octets pop3d gave them before.
os.rename(dovecot_home, os.path.join(d, "after-dovecot"))
after = os.path.join(d, "after-dovecot")
os.rename(os.path.join(after, "Maildir"), os.path.join(after, "alice"))
moved = os.listdir(os.path.join(after, "alice", "cur"))
assert any(":2,S" in n for n in moved), f"Dovecot moved nothing to cur/: {moved}"
COMMANDS = ["STAT", "LIST", "UIDL"] + [f"RETR {n}" for n in range(1, len(kept) + 1)] + ["QUIT"]
again, _ = run_pop3d(after)
# The same UIDLs (a derived one too) after Dovecot moved the files to cur/ with flags.
same("UIDL after Dovecot", [u.split()[1].decode() for u in again[2][1]],
     [u for i, u in enumerate(uidls, 1) if i not in DELETE])
want = [r for i, r in enumerate(ours[3:3 + N], 1) if i not in DELETE]
same("RETR after Dovecot", [b for _, b in again[3:3 + len(kept)]], [b for _, b in want])
same("LIST after Dovecot", [line.split()[1] for line in again[1][1]],
     [line.split()[1] for i, line in enumerate(listing[1], 1) if i not in DELETE])
print(f"ok: pop3d and Dovecot agree on {N} messages (STAT, LIST, UIDL, RETR, TOP, DELE), "
      f"and pop3d on the Maildir Dovecot left")
