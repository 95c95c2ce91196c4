"""Perl's POP3 clients through socat -> pop3d, as a Perl script uses them.

Net::POP3 with an Authen::SASL object asking for LOGIN: AUTH LOGIN (its
transcript shows the exchange), a wrong password first (logged
method=LOGIN), then every message fetched byte for byte and half of them
deleted. Net::POP3's auth(user, password) picks the first mechanism CAPA
lists that Authen::SASL knows: PLAIN. Mail::POP3Client (AUTH_MODE BEST: no
APOP timestamp, no CRAM-MD5, so USER/PASS; it has no AUTH LOGIN) as the
UTF-8 user jürgen of tests/scripts/passwd, without the UTF8 command
(RFC 6856: UTF8 USER advertised suffices): fetches and deletes the rest.
"""
import os
import random

import deploy_common as D
import pop3lib as P

JUERGEN = "j\u00fcrgen"

PERL = r'''
use strict;
use warnings;
use Net::POP3;
use Authen::SASL;
use Mail::POP3Client;

my ($mode, $port, $user, $pass, $out, $delete) = @ARGV;

sub save {
    my ($n, $text) = @_;
    open(my $fh, ">:raw", "$out/$n") or die "$out/$n: $!";
    print $fh $text;
    close($fh) or die;
}

if ($mode eq "netpop3-login" or $mode eq "netpop3-default") {
    my $pop = Net::POP3->new("127.0.0.1", Port => $port, Timeout => 30, Debug => 1)
        or die "cannot connect: $@";
    if ($mode eq "netpop3-login") {
        my $bad = Authen::SASL->new(mechanism => "LOGIN",
            callback => { user => $user, pass => "wrong", authname => $user });
        $pop->auth($bad) and die "a wrong password was accepted";
        my $sasl = Authen::SASL->new(mechanism => "LOGIN",
            callback => { user => $user, pass => $pass, authname => $user });
        $pop->auth($sasl) or die "AUTH LOGIN failed: " . $pop->message;
    } else {
        $pop->auth($user, $pass) or die "auth failed: " . $pop->message;
    }
    my $list = $pop->list or die "LIST failed";
    for my $n (sort { $a <=> $b } keys %$list) {
        my $lines = $pop->get($n) or die "RETR $n failed";
        save($n, join("", @$lines));
        if ($delete eq "odd" and $n % 2) {
            $pop->delete($n) or die "DELE $n failed";
        }
    }
    $pop->quit or die "QUIT failed";
} elsif ($mode eq "pop3client") {
    my $pop = Mail::POP3Client->new(USER => $user, PASSWORD => $pass, HOST => "127.0.0.1",
                                    PORT => $port, AUTH_MODE => "BEST", TIMEOUT => 30)
        or die "cannot connect";
    my $count = $pop->Count;
    die "login failed: " . $pop->Message if $count < 0;
    for my $n (1 .. $count) {
        my $text = $pop->HeadAndBody($n);
        defined $text or die "RETR $n failed";
        save($n, $text);
        $pop->Delete($n) or die "DELE $n failed" if $delete eq "all";
    }
    $pop->Close or die "QUIT failed";
} else {
    die "unknown mode $mode";
}
'''

d = D.fresh_dir("client-perl")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
box = os.path.join(maildir, "alice.mbox")
ubox = os.path.join(maildir, JUERGEN + ".mbox")
rng = random.Random(5034)
originals = D.generated_messages(rng, 24)
D.write_mailbox(box, originals)
theirs = D.generated_messages(rng, 6, first=101)
D.write_mailbox(ubox, theirs)
script = os.path.join(d, "fetch.pl")
D.write(script, PERL)


def fetch(name, mode, port, user, password, delete):
    """One run of the Perl script; returns (messages by number, its transcript)."""
    out = os.path.join(d, name)
    os.makedirs(out)
    log = os.path.join(d, name + ".log")
    D.run_client(["perl", script, mode, str(port), user, password, out, delete], log, settle=d)
    got = {int(n): D.read(os.path.join(out, n)) for n in os.listdir(out)}
    return [got[n] for n in sorted(got)], D.read(log).decode(errors="replace")


def lf_form(msg):
    """A message as Net::POP3's get() returns it: unstuffed, CRLF turned into LF."""
    return P.wire_form(msg).replace(b"\r\n", b"\n")


log = os.path.join(d, "pop3d.log")
with D.socat(d, D.pop3d_test_args(maildir, log)) as fe:
    # 1. Net::POP3, AUTH LOGIN: a wrong password, then the right one; delete the odd ones.
    got, transcript = fetch("login", "netpop3-login", fe.port, "alice", "secret", "odd")
    assert ">>> AUTH LOGIN" in transcript and "<<< + VXNlcm5hbWU6" in transcript and \
        "<<< + UGFzc3dvcmQ6" in transcript, transcript
    assert ">>> AUTH PLAIN" not in transcript, transcript
    assert got == [lf_form(m) for m in originals], "Net::POP3 got other octets"
    text = D.wait_log(log, "session end:")
    assert "authentication failed: user=alice peer=127.0.0.1 method=LOGIN" in text, text
    kept = originals[1::2]
    assert D.mailbox_messages(box) == kept, "DELE did not remove exactly the odd messages"

    # 2. Net::POP3 auth(user, password): Authen::SASL takes PLAIN, CAPA's first.
    got, transcript = fetch("default", "netpop3-default", fe.port, "alice", "secret", "none")
    assert ">>> AUTH PLAIN" in transcript, transcript
    assert got == [lf_form(m) for m in kept]

    # 3. Mail::POP3Client as jürgen (UTF-8, no UTF8 command): fetch and delete all.
    got, transcript = fetch("pop3client", "pop3client", fe.port, JUERGEN, "geheim", "all")
    assert [g.replace(b"\r\n", b"\n") for g in got] == [lf_form(m) for m in theirs], \
        "Mail::POP3Client got other octets"
    assert D.mailbox_messages(ubox) == [], "jürgen's messages were not deleted"
    text = D.wait_log(log, "session end:", 3)
    assert 'login: user="j\\xc3\\xbcrgen" peer=127.0.0.1 messages=6' in text, text
    assert D.mailbox_messages(box) == kept

print("ok: Net::POP3 AUTH LOGIN and PLAIN, Mail::POP3Client as a UTF-8 user (socat)")
