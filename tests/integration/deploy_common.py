"""Shared helpers for the deploy_* and client_* tests.

Front ends are started from the configuration files this repository ships
(xinetd.d/, stunnel/, systemd/), rewritten only where a private test run must
differ: a free high port on 127.0.0.1, pid and log files in the test's pop3lib.tmpdir(), the
repository's ./pop3d, a self-signed certificate. The pop3d options the shipped
file gives are kept; the test's options are appended after them (for pop3d the
last occurrence of an option wins), so a broken shipped option still shows up.

Also here: a realistic mailbox generator (multipart, attachments, lines that
start with "." and "From ") and the check that a client delivered each message
byte-identical apart from the header lines the client adds on top.
"""

import base64
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import time

import pop3lib as P

ROOT = P.ROOT
POP3D = P.POP3D
INSTALLED_POP3D = "/usr/local/sbin/pop3d"  # where `make install` puts it by default
SESSION_LIMIT = 120  # seconds any front end may live (each is wrapped in timeout)


# ---- files and processes ----

def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)


def fresh_dir(name):
    """An empty pop3lib.tmpdir(NAME) (left over files would fake results)."""
    d = P.tmpdir(name)
    shutil.rmtree(d)
    os.makedirs(d)
    return d


def listening(port):
    """True once something listens on 127.0.0.1:port (read from /proc, so no
    test connection is made: each connection would start a pop3d session)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def wait_listen(port, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if listening(port):
            return
        if proc.poll() is not None:
            raise AssertionError(f"front end exited with status {proc.returncode} "
                                 f"before listening on port {port}")
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def stop(proc):
    """End a front end we started (its process group: timeout, the server and
    the sessions it started, even when timeout itself has already ended)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def spawn(argv, log, env=None):
    """A front end in its own process group, wrapped in timeout, output to log."""
    out = open(log, "ab")
    try:
        return subprocess.Popen(["timeout", str(SESSION_LIMIT), *argv], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    finally:
        out.close()


def no_spaces(words):
    """xinetd's server_args and stunnel's execArgs split on blanks: no quoting."""
    for w in words:
        assert " " not in w, f"path with a blank cannot go into a front-end config: {w!r}"
    return " ".join(words)


# ---- pop3d's options for a test mailbox directory ----

def pop3d_test_args(maildir, log, extra=()):
    """Virtual users from tests/scripts/passwd (alice/secret, bob), mailboxes
    MAILDIR/%u.mbox (or Maildirs MAILDIR/%u/: pop3lib.STORE, with an index in
    MAILDIR/index, so each login after the first reads it and only the files
    added since); as root served as 'nobody'."""
    index = ["--index-dir", os.path.join(maildir, "index")] if P.STORE == "maildir" else []
    return ["--passwd", P.PASSWD, "--mailbox", P.mailbox_template(maildir),
            "--log", log, "--login-delay", "0", *index, *P.root_args(), *P.state_args(), *extra]


# ---- TLS ----

def make_certificate(d):
    """A self-signed certificate for 127.0.0.1/localhost: (pem with key+cert, cert)."""
    key, cert, pem = (os.path.join(d, n) for n in ("key.pem", "cert.pem", "pop3d.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    write(pem, read(key) + read(cert), 0o600)
    return pem, cert


def ssl_context(cafile):
    """A client context that checks the server's certificate against CAFILE."""
    return ssl.create_default_context(cafile=cafile)


# ---- config rewriting ----

def set_option(text, name, value, sep=" = "):
    """Replace the (uncommented) NAME line of a config; it must be there."""
    pat = re.compile(rf"^([ \t]*){re.escape(name)}[ \t]*=.*$", re.M)
    assert pat.search(text), f"the shipped config has no '{name}' line"
    return pat.sub(lambda m: m.group(1) + name + sep + value, text, count=1)


def get_option(text, name):
    m = re.search(rf"^[ \t]*{re.escape(name)}[ \t]*=[ \t]*(.*?)[ \t]*$", text, re.M)
    assert m, f"the shipped config has no '{name}' line"
    return m.group(1)


def xinetd_config(shipped, port, server, server_args, logfile):
    """A private xinetd configuration holding only the shipped service, on
    127.0.0.1:PORT (UNLISTED: not looked up in /etc/services), with its log in
    the test's directory. 'flags = IPv6' goes: it contradicts 'bind = 127.0.0.1'."""
    text = read(shipped).decode()
    if not P.as_root():
        # xinetd would setuid() to the shipped 'user = root' and fail.
        text = set_option(text, "user", pwd.getpwuid(os.geteuid()).pw_name)
    text = set_option(text, "server", server)
    text = set_option(text, "server_args", server_args)
    text = re.sub(r"^[ \t]*flags[ \t]*=.*\n", "", text, flags=re.M)
    head, brace, tail = text.rpartition("}")
    assert brace, "no closing brace in the shipped xinetd service"
    text = (head + f"\ttype            = UNLISTED\n\tport            = {port}\n"
            f"\tbind            = 127.0.0.1\n" + brace + tail)
    return (f"defaults\n{{\n\tlog_type        = FILE {logfile}\n"
            f"\tlog_on_success  = PID HOST EXIT\n}}\n\n" + text)


def stunnel_inetd_config(d, pem, pop3d_args):
    """stunnel/inetd/pop3s.conf with our certificate and ./pop3d. Its logging
    is left as shipped: under xinetd, stderr is the client's socket, so a
    stray log line there would break the TLS handshake."""
    text = read(os.path.join(ROOT, "stunnel", "inetd", "pop3s.conf")).decode()
    text = set_option(text, "cert", pem)
    text = set_option(text, "exec", POP3D)
    shipped_args = get_option(text, "execArgs")
    text = set_option(text, "execArgs", shipped_args + " " + no_spaces(pop3d_args))
    path = os.path.join(d, "pop3s-inetd.conf")
    write(path, text)
    return path


def stunnel_foreground(text):
    """A shipped daemon configuration forks, as /etc/init.d/stunnel4 needs
    (it would hang on one that does not); the test's private copy stays in
    the foreground, in the process group the test stops."""
    assert not re.search(r"^[ \t]*foreground[ \t]*=", text, re.M), \
        "a stunnel daemon configuration in the foreground hangs /etc/init.d/stunnel4"
    return "foreground = yes\n" + text


def stunnel_daemon_config(d, pem, port, pop3d_args):
    """stunnel/pop3s.conf on 127.0.0.1:PORT with pid and log files in D."""
    text = stunnel_foreground(read(os.path.join(ROOT, "stunnel", "pop3s.conf")).decode())
    text = set_option(text, "pid", os.path.join(d, "stunnel.pid"))
    text = set_option(text, "syslog", "no")
    text = set_option(text, "accept", f"127.0.0.1:{port}")
    text = set_option(text, "cert", pem)
    text = set_option(text, "exec", POP3D)
    shipped_args = get_option(text, "execArgs")
    text = set_option(text, "execArgs", shipped_args + " " + no_spaces(pop3d_args))
    text = text.replace("[pop3s]", f"output = {os.path.join(d, 'stunnel.log')}\n\n[pop3s]", 1)
    path = os.path.join(d, "pop3s.conf")
    write(path, text)
    return path


# ---- front ends ----

class FrontEnd:
    """A started front end: .port, .proc; use as a context manager."""

    def __init__(self, argv, port, log, env=None):
        self.port = port
        self.log = log
        self.proc = spawn(argv, log, env)
        try:
            wait_listen(port, self.proc)
        except BaseException:
            stop(self.proc)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        stop(self.proc)


def xinetd(d, shipped, server, server_args):
    """xinetd in the foreground with the shipped service file rewritten."""
    port = P.free_port()
    conf = os.path.join(d, "xinetd.conf")
    write(conf, xinetd_config(shipped, port, server, server_args,
                              os.path.join(d, "xinetd-service.log")))
    fe = FrontEnd(["xinetd", "-dontfork", "-filelog", os.path.join(d, "xinetd.log"),
                   "-f", conf, "-pidfile", os.path.join(d, "xinetd.pid")],
                  port, os.path.join(d, "xinetd.out"))
    fe.xinetd_log = os.path.join(d, "xinetd.log")
    return fe


def xinetd_pop3(d, pop3d_args):
    """xinetd.d/pop3: xinetd -> pop3d."""
    text = read(os.path.join(ROOT, "xinetd.d", "pop3")).decode()
    args = get_option(text, "server_args") + " " + no_spaces(pop3d_args)
    return xinetd(d, os.path.join(ROOT, "xinetd.d", "pop3"), POP3D, args)


def xinetd_pop3s(d, pem, pop3d_args):
    """xinetd.d/pop3s: xinetd -> stunnel (inetd mode) -> pop3d."""
    shipped = os.path.join(ROOT, "xinetd.d", "pop3s")
    server = get_option(read(shipped).decode(), "server")
    assert os.access(server, os.X_OK), f"xinetd.d/pop3s runs {server}, which is not there"
    return xinetd(d, shipped, server, stunnel_inetd_config(d, pem, pop3d_args))


def stunnel(d, pem, pop3d_args):
    """stunnel/pop3s.conf: stunnel daemon (kept in the foreground) -> pop3d."""
    port = P.free_port()
    conf = stunnel_daemon_config(d, pem, port, pop3d_args)
    return FrontEnd(["stunnel", conf], port, os.path.join(d, "stunnel.out"))


def tcpserver(d, pop3d_args):
    """ucspi-tcp's tcpserver -> pop3d (no DNS, no ident)."""
    port = P.free_port()
    return FrontEnd(["tcpserver", "-R", "-H", "-l", "localhost", "127.0.0.1", str(port),
                     POP3D, *pop3d_args], port, os.path.join(d, "tcpserver.out"))


def socat(d, pop3d_args):
    """socat TCP-LISTEN -> pop3d (on a socket pair; pop3d reads SOCAT_PEERADDR)."""
    port = P.free_port()
    return FrontEnd(["socat", "-lf", os.path.join(d, "socat.log"),
                     f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                     P.socat_exec(d, [POP3D, *pop3d_args])],
                    port, os.path.join(d, "socat.out"))


def unit_value(path, key):
    """The value of KEY= in a systemd unit file (the last one wins)."""
    vals = re.findall(rf"^{re.escape(key)}=(.*)$", read(path).decode(), re.M)
    assert vals, f"{os.path.basename(path)} has no {key}="
    return vals[-1].strip()


def unit_command(path):
    """ExecStart= of a unit as argv: the '-' prefix dropped, %% unescaped."""
    cmd = unit_value(path, "ExecStart")
    cmd = cmd.lstrip("-")
    return [w.replace("%%", "%") for w in cmd.split()]


def socket_activated(d, argv):
    """What systemd does for a socket unit with Accept=yes, done by
    systemd-socket-activate: listen on 127.0.0.1:PORT and run ARGV for each
    connection, the connection on stdin and stdout."""
    port = P.free_port()
    return FrontEnd(["systemd-socket-activate", "--listen", f"127.0.0.1:{port}", "--accept",
                     "--inetd", *argv], port, os.path.join(d, "socket-activate.out"))


def systemd_pop3d(d, pop3d_args):
    """systemd/pop3d@.service's ExecStart, run on ./pop3d with the test's
    options appended."""
    cmd = unit_command(os.path.join(ROOT, "systemd", "pop3d@.service"))
    assert cmd[0] == INSTALLED_POP3D, cmd
    return socket_activated(d, [POP3D, *cmd[1:], *pop3d_args])


def systemd_pop3s(d, pem, pop3d_args):
    """systemd/pop3s@.service's ExecStart: stunnel in inetd mode, with the
    rewritten stunnel/inetd/pop3s.conf in place of the installed one."""
    cmd = unit_command(os.path.join(ROOT, "systemd", "pop3s@.service"))
    assert cmd[1:] == ["/etc/stunnel/inetd/pop3s.conf"], cmd
    assert os.access(cmd[0], os.X_OK), f"pop3s@.service runs {cmd[0]}, which is not there"
    return socket_activated(d, [cmd[0], stunnel_inetd_config(d, pem, pop3d_args)])


# ---- mailboxes ----

WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "mail", "From", "from", ".", "..",
         "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod", "tempor"]


def text_lines(rng, count):
    """Body text with the lines that trip up POP3 and mbox code: lines that
    start with "." (byte-stuffing), "From " inside a paragraph (not a message
    start: the line before is not empty), ">From " after an empty line (stored
    quoted, and sent as stored), a lone ".", long lines, blank lines."""
    out = []
    for _ in range(count):
        k = rng.random()
        if k < 0.06:
            out.append("." * rng.randint(1, 3) + "dot line " + rng.choice(WORDS))
        elif k < 0.08:
            out.append(".")
        elif k < 0.12 and out and out[-1] != "":
            out.append("From the desk of " + rng.choice(WORDS) + " (not a new message)")
        elif k < 0.14:
            out.extend(["", ">From quoted, as an MDA quotes it"])
        elif k < 0.16:
            out.append("")
        elif k < 0.17:
            out.append("x" * rng.randint(300, 990))
        else:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))
            if line.startswith("From ") and (not out or out[-1] == ""):
                line = ">" + line  # would start a new message: quoted, as an MDA does
            out.append(line)
    return out


def headers(n, subject, extra=()):
    return [f"From: Sender {n} <sender{n}@example.org>", "To: alice@example.net",
            f"Subject: {subject}",
            "Date: Mon, 2 Nov 2026 09:14:07 +0000",
            f"Message-ID: <{n}.deploy@example.org>",
            "X-Folded: a header folded",
            "\tover two lines", *extra]


def plain_message(rng, n):
    return headers(n, f"plain message {n}") + [""] + text_lines(rng, rng.randint(3, 80))


def base64_lines(data):
    b = base64.b64encode(data).decode()
    return [b[i:i + 76] for i in range(0, len(b), 76)]


def multipart_message(rng, n):
    """multipart/mixed: text, a binary attachment, a text attachment with dot
    lines; sometimes a multipart/alternative text/html part."""
    bnd = f"=_boundary_{n}_{rng.randint(0, 1 << 30)}"
    lines = headers(n, f"multipart message {n} with attachments",
                    ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{bnd}"'])
    lines += ["", "This is a multi-part message in MIME format.", f"--{bnd}",
              "Content-Type: text/plain; charset=us-ascii", ""]
    lines += text_lines(rng, rng.randint(2, 30))
    if rng.random() < 0.5:
        alt = bnd + "_alt"
        lines += [f"--{bnd}", f'Content-Type: multipart/alternative; boundary="{alt}"', "",
                  f"--{alt}", "Content-Type: text/plain", "", "plain part", ".", "",
                  f"--{alt}", "Content-Type: text/html", "",
                  "<html><body><p>html part</p>", ".hidden { }", "</body></html>",
                  f"--{alt}--", ""]
        # The empty line after the inner closing boundary is what MUAs write;
        # getmail re-serializes messages with Python's email package, which
        # would add it (a client-side change, not the server's).
    blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(100, 12000)))
    lines += [f"--{bnd}", "Content-Type: application/octet-stream; name=\"data.bin\"",
              "Content-Transfer-Encoding: base64",
              "Content-Disposition: attachment; filename=\"data.bin\"", ""]
    lines += base64_lines(blob)
    lines += [f"--{bnd}", "Content-Type: text/plain; name=\"notes.txt\"",
              "Content-Disposition: attachment; filename=\"notes.txt\"", ""]
    lines += text_lines(rng, rng.randint(2, 20))
    lines += [f"--{bnd}--", ""]
    return lines


def generated_messages(rng, count, first=1):
    """COUNT messages (bytes, LF line ends), numbered from FIRST."""
    msgs = []
    for n in range(first, first + count):
        lines = multipart_message(rng, n) if rng.random() < 0.4 else plain_message(rng, n)
        msgs.append(("\n".join(lines) + "\n").encode())
    return msgs


def mbox_bytes(msgs):
    """An mbox as an MDA writes it: From_ line, message, empty separator line.
    Messages must not contain a "From " line right after an empty line."""
    out = []
    for i, m in enumerate(msgs):
        assert b"\n\nFrom " not in m, "unquoted From_ line in a generated message"
        out.append(b"From sender%d@example.org Mon Nov  2 09:14:07 2026\n" % i + m + b"\n")
    return b"".join(out)


def scaled(n):
    """How many messages a client test uses: N on an mbox, a tenth of it on a
    Maildir (the second run of each client test must stay cheap)."""
    return n if P.STORE == "mbox" else n // 10


def mailbox_path(d, user="alice"):
    """USER's maildrop in directory D: an mbox file, or a Maildir (a path
    ending in '/') when the test runs on Maildirs (pop3lib.STORE)."""
    return os.path.join(d, user + ("/" if P.STORE == "maildir" else ".mbox"))


def write_mailbox(path, msgs):
    if P.is_maildir(path):
        P.maildir_add(path, msgs)
        assert P.maildir_messages_in_order(path) == msgs
    else:
        write(path, mbox_bytes(msgs))
        # The independent reading of the contract must find the same messages.
        assert P.split_mbox(read(path)) == msgs
    P.give_to_server(os.path.dirname(path))


def append_mailbox(path, msgs):
    if P.is_maildir(path):
        P.maildir_add(path, msgs)
        P.give_to_server(path)
        return
    with open(path, "ab") as f:
        f.write(mbox_bytes(msgs))


def mailbox_messages(path):
    """The messages in a maildrop, in order (for a Maildir, the order of
    delivery its names give)."""
    if P.is_maildir(path):
        return P.maildir_messages_in_order(path)
    return P.split_mbox(read(path)) if os.path.exists(path) else []


def snapshot(path):
    """What a maildrop holds, to compare before and after a run that must not
    change it: an mbox's octets; a Maildir's files by name ("new/NAME",
    "cur/NAME"), so a rename (new/ to cur/, a flag) shows too."""
    return P.maildir_contents(path) if P.is_maildir(path) else read(path)


# ---- checking what a client delivered ----

def message_id(msg):
    head = msg.split(b"\n\n", 1)[0]
    m = re.search(rb"^Message-ID:[ \t]*(<[^>\n]*>)", head, re.M | re.I)
    assert m, f"delivered message without Message-ID: {msg[:300]!r}"
    return m.group(1).decode()


def added_header_names(prefix):
    """The names of the header fields in PREFIX (complete lines, continuation
    lines allowed)."""
    names = []
    for line in prefix.split(b"\n")[:-1]:
        if line[:1] in (b" ", b"\t") and names:
            continue
        m = re.match(rb"([!-9;-~]+):", line)
        assert m, f"not a header line: {line!r}"
        names.append(m.group(1).decode().lower())
    return names


def check_delivered(delivered, originals, allowed):
    """Each delivered message must be an original, byte for byte, with only
    header fields named in ALLOWED (lower case) added on top. Returns the
    Message-IDs in delivery order."""
    by_id = {message_id(m): m for m in originals}
    ids = []
    for got in delivered:
        mid = message_id(got)
        assert mid in by_id, f"delivered a message that is not in the mailbox: {mid}"
        want = by_id[mid]
        assert got.endswith(want), (f"{mid} differs from the stored message:\n"
                                    f"{first_difference(got, want)}")
        prefix = got[:len(got) - len(want)]
        assert prefix == b"" or prefix.endswith(b"\n")
        extra = set(added_header_names(prefix)) - set(allowed)
        assert not extra, f"{mid}: the client added headers {extra} (allowed: {allowed})"
        ids.append(mid)
    return ids


def first_difference(got, want):
    g, w = got.split(b"\n"), want.split(b"\n")
    # align on the end: the client's headers are extra lines on top
    off = len(g) - len(w)
    for i in range(len(w) - 1, -1, -1):
        gi = i + off
        if gi < 0 or g[gi] != w[i]:
            return f"line {i + 1} of the stored message: {w[i]!r}, delivered: " \
                   f"{g[gi] if gi >= 0 else None!r}"
    return "the delivered message is shorter"


def ids_of(msgs):
    return [message_id(m) for m in msgs]


def maildir_messages(path):
    """The messages of a Maildir (new/ and cur/), in no particular order."""
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(path, sub)
        if os.path.isdir(p):
            out.extend(read(os.path.join(p, name)) for name in sorted(os.listdir(p)))
    return out


def same_messages(ids, msgs, what):
    """IDS (from check_delivered) name each of MSGS exactly once."""
    assert len(ids) == len(set(ids)), f"{what}: a message was delivered twice"
    want = ids_of(msgs)
    missing = sorted(set(want) - set(ids))
    extra = sorted(set(ids) - set(want))
    assert not missing and not extra, f"{what}: missing {missing[:5]}, unexpected {extra[:5]}"


def mboxrd_messages(path):
    """The messages of an mbox written in the mboxrd format (mpop, getmail's
    Mboxrd): the writer put '>' before every line matching ^>*From , so an
    unquoted From_ line after an empty line always starts a message; reading
    removes one '>' from each such line, which gives back the exact message."""
    out = []
    for m in P.split_mbox(read(path)):
        out.append(re.sub(rb"^>(>*From )", rb"\1", m, flags=re.M))
    return out


def make_maildir(path):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


def pop3d_log(path):
    return read(path).decode(errors="replace") if os.path.exists(path) else ""


def run_client(argv, log, ok=(0,), env=None, timeout=90, stdin=None, settle=None):
    """Run a client to completion; its output goes to LOG and into the error.
    SETTLE: a test directory whose pop3d sessions must be over afterwards
    (see wait_sessions_gone)."""
    with open(log, "ab") as out:
        out.write(b"$ " + " ".join(argv).encode() + b"\n")
        out.flush()
        r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                           timeout=timeout, input=stdin,
                           stdin=None if stdin is not None else subprocess.DEVNULL)
    if r.returncode not in ok:
        tail = read(log).decode(errors="replace")[-3000:]
        raise AssertionError(f"{argv[0]} exited {r.returncode}; its output:\n{tail}")
    if settle:
        wait_sessions_gone(settle)
    return r.returncode


def wait_log(path, needle, count=1, timeout=15):
    """The log text once NEEDLE occurs COUNT times in it: pop3d writes its
    summary line after the QUIT answer, so the client can be faster."""
    deadline = time.time() + timeout
    while True:
        text = pop3d_log(path)
        if text.count(needle) >= count or time.time() > deadline:
            return text
        time.sleep(0.05)


def wait_sessions_gone(marker, timeout=15):
    """Wait until no pop3d process whose command line mentions MARKER (a
    test's directory) is left. pop3d releases the maildrop only after its QUIT
    answer and its summary log line, so a client that logs in again at once
    can be answered [IN-USE] (client_reconnect shows it); the tests about
    other things wait here between sessions on the same mailbox."""
    exe = os.path.realpath(POP3D)
    deadline = time.time() + timeout
    while True:
        running = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/exe") != exe:
                    continue
                if marker.encode() in read(f"/proc/{pid}/cmdline"):
                    running.append(int(pid))
            except OSError:
                continue  # gone, a zombie, or not ours to look at
        if not running:
            return
        if time.time() > deadline:
            raise AssertionError(f"pop3d sessions {running} still running after {timeout} s")
        time.sleep(0.02)
