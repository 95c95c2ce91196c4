"""getmail6 with SimplePOP3Retriever through socat -> pop3d and with
SimplePOP3SSLRetriever through stunnel/pop3s.conf -> pop3d.

Keep mode (delete = false, read_all = false): the first run fetches everything
into a Maildir and leaves the mbox as it was; after new mail arrives, the next
run fetches only the new messages. Delete mode with max_messages_per_session:
exactly those messages leave the mbox. Over POP3S (certificate checked against
the test's self-signed one) the rest is fetched into an Mboxrd file and
deleted. Every message arrives byte-identical apart from the headers getmail
adds on top.

getmail refuses to deliver as root, so as root it runs as 'nobody', the way a
user runs it.
"""
import os
import pwd
import random
import shutil

import deploy_common as D
import pop3lib as P

# getmail prepends Return-Path: and Delivered-To: (its delivered_to option,
# the envelope it knows) and a Received: trace header (its received option);
# all three are on by default. Nothing else may differ.
ADDED = {"return-path", "delivered-to", "received"}
PER_SESSION = D.scaled(100)

# getmail6 (6.18) forks its delivery child before it installs the SIGCHLD
# handler it then waits on (ForkingBase.forkchild; getmail6 issue #226): a
# child that exits first is never noticed, and under load the run stops with
# "waiting child pid N timed out". That is the client's bug, not the
# server's: run the packaged getmail with a wait that cannot miss the child.
GETMAIL_WRAPPER = """
import os, runpy, signal, sys
import getmailcore.baseclasses as base

signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # children are reaped by waitpid()


def prepare_child(self):
    pass  # no SIGCHLD handler: waitpid() below reaps the child


def wait_for_child(self, childpid):
    pid, status = os.waitpid(childpid, 0)
    if not os.WIFEXITED(status):
        raise base.getmailOperationError("child pid %d failed: status %d" % (pid, status))
    return os.WEXITSTATUS(status)


base.ForkingBase._prepare_child = prepare_child
base.ForkingBase._wait_for_child = wait_for_child
sys.argv[0] = GETMAIL
runpy.run_path(GETMAIL, run_name="__main__")
"""

d = D.fresh_dir("client-getmail")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = D.mailbox_path(maildir)
client = os.path.join(d, "client")
getmaildir = os.path.join(client, "getmail")
os.makedirs(getmaildir)
pem, cert = D.make_certificate(d)
getmail = shutil.which("getmail")
interpreter = D.read(getmail).split(b"\n", 1)[0][2:].decode().strip()  # its #! line
wrapper = os.path.join(client, "getmail-wrapper.py")
D.write(wrapper, f"GETMAIL = {getmail!r}\n" + GETMAIL_WRAPPER)

rng = random.Random(5034)
originals = D.generated_messages(rng, D.scaled(250))
D.write_mailbox(box, originals)
before = D.snapshot(box)


def as_user():
    """As root: chown the client's files to 'nobody' and the setpriv prefix
    that runs getmail as that user."""
    if not P.as_root():
        return []
    pw = pwd.getpwnam("nobody")
    for dirpath, _, files in os.walk(client):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]


def fetch(name, port, options, ssl=False):
    if ssl:
        retriever = f"type = SimplePOP3SSLRetriever\nca_certs = {cert}\n"
        target = os.path.join(client, name + ".mbox")
        D.write(target, b"")
        destination = f"type = Mboxrd\npath = {target}\n"
    else:
        retriever = "type = SimplePOP3Retriever\n"
        target = D.make_maildir(os.path.join(client, name)) + "/"
        destination = f"type = Maildir\npath = {target}\n"
    rc = os.path.join(client, name + ".getmailrc")
    D.write(rc, f"""[retriever]
{retriever}server = 127.0.0.1
port = {port}
username = alice
password = secret
timeout = 30

[destination]
{destination}
[options]
verbose = 1
{options}
""", 0o600)
    env = dict(os.environ, HOME=client)
    D.run_client([*as_user(), interpreter, wrapper, "--getmaildir", getmaildir, "--rcfile", rc],
                 os.path.join(d, name + ".log"), env=env, settle=d)
    if ssl:
        # Mboxrd: the From_ line and the >From quoting are the format's.
        return D.mboxrd_messages(target)
    return D.maildir_messages(target)


log = os.path.join(d, "pop3d.log")
args = D.pop3d_test_args(maildir, log)
with D.socat(d, args) as plain, D.stunnel(d, pem, args) as tls:
    # 1. keep, only unseen messages (getmail's oldmail file holds the UIDLs).
    got = fetch("keep1", plain.port, "read_all = false\ndelete = false")
    D.same_messages(D.check_delivered(got, originals, ADDED), originals, "keep run")
    assert D.snapshot(box) == before, "a keep run changed the mailbox"

    # 2. new mail; only the new messages are fetched.
    new = D.generated_messages(rng, 6, first=1001)
    D.append_mailbox(box, new)
    got = fetch("keep2", plain.port, "read_all = false\ndelete = false")
    D.same_messages(D.check_delivered(got, new, ADDED), new, "second keep run")
    everything = originals + new

    # 3. delete mode, at most PER_SESSION messages: the first ones go.
    got = fetch("delete1", plain.port,
                f"read_all = true\ndelete = true\nmax_messages_per_session = {PER_SESSION}")
    D.same_messages(D.check_delivered(got, everything, ADDED), everything[:PER_SESSION],
                    "delete run")
    assert D.mailbox_messages(box) == everything[PER_SESSION:]

    # 4. POP3S, delete mode: the rest, into an Mboxrd file; the maildrop is empty.
    got = fetch("pop3s", tls.port, "read_all = true\ndelete = true", ssl=True)
    rest = everything[PER_SESSION:]
    D.same_messages(D.check_delivered(got, rest, ADDED), rest, "POP3S run")
    assert D.mailbox_messages(box) == [], "messages left after fetching all"

print("ok: getmail6 SimplePOP3Retriever (socat) and SimplePOP3SSLRetriever (stunnel)")
