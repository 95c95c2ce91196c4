#!/usr/bin/env python3
"""Write a realistic, reproducible Unix mbox for benchmarks.

The same --seed, --messages and --size always give the same bytes. Most
messages are 2-20 KB of text; about one in a thousand carries a multi-MB
base64 attachment; bodies contain lines starting with '.', "From " quoted as
">From " (as MDAs store it), and some very long lines.

    bench/genmbox.py --messages 100000 --size 1G --seed 1 bench/data/big.mbox
"""
import argparse
import base64
import os
import random
import sys

WORDS = ("the of and to a in is it you that he was for on are with as I his they be at one "
         "have this from or had by hot word but what some we can out other were all there "
         "when up use your how said an each she which do their time if will way about many "
         "then them write would like so these her long make thing see him two has look more "
         "day could go come did number sound no most people my over know water than call "
         "first who may down side been now find any new work part take get place made live "
         "where after back little only round man year came show every good me give our under "
         "name very through just form sentence great think say help low line differ turn "
         "cause much mean before move right boy old too same tell does set three want air "
         "well also play small end put home read hand port large spell add even land here "
         "must big high such follow act why ask men change went light kind off need house "
         "picture try us again animal point mother world near build self earth father").split()

NAMES = ("alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy "
         "rupert sybil trent victor walter").split()
DOMAINS = ("example.org example.com example.net mail.example.org lists.example.com").split()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()

SMALL_MIN, SMALL_MAX = 2 * 1024, 20 * 1024
BIG_MIN, BIG_MAX = 1 << 20, 6 << 20
BIG_EVERY = 1000            # one message in this many has a big attachment
LINE_POOL = 8192            # distinct body lines to draw from


def parse_size(text):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text and text[-1] in mult:
        return int(text[:-1]) * mult[text[-1]]
    return int(text)


def make_line_pool(rng):
    """Body lines, 20-76 octets mostly; a few special ones mixed in at fixed odds."""
    pool = []
    for i in range(LINE_POOL):
        r = rng.random()
        if r < 0.03:
            line = "." + " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 8)))
        elif r < 0.05:
            line = ">From " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
        elif r < 0.06:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 1500)))
        elif r < 0.12:
            line = ""
        elif r < 0.14:
            line = "> " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        else:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 13)))
        pool.append((line + "\n").encode())
    return pool


def date(rng, n):
    t = 1262304000 + n * 613 + rng.randint(0, 600)     # from 2010 on, in order
    day = t // 86400
    return "%s %s %2d %02d:%02d:%02d %d" % (
        DAYS[(day + 3) % 7], MONTHS[(day // 30) % 12], day % 28 + 1,
        t // 3600 % 24, t // 60 % 60, t % 60, 2010 + day // 365)


def header(rng, n):
    who = rng.choice(NAMES) + "@" + rng.choice(DOMAINS)
    to = rng.choice(NAMES) + "@" + rng.choice(DOMAINS)
    when = date(rng, n)
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
    lines = [
        "From %s %s" % (who, when),
        "Return-Path: <%s>" % who,
        "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])" % (
            n % 7, rng.choice(DOMAINS), n % 7, rng.choice(DOMAINS), n % 250),
        "\tby mail.example.org with ESMTPS id %08X; %s +0000" % (rng.getrandbits(32), when),
        "Message-ID: <%d.%08x@%s>" % (n, rng.getrandbits(32), rng.choice(DOMAINS)),
        "Date: %s +0000" % when,
        "From: %s" % who,
        "To: %s" % to,
        "Subject: %s" % subject,
        "MIME-Version: 1.0",
    ]
    if n % 3 == 0:
        lines.append("Status: RO")
    if n % 5 == 0:
        lines.append("X-Status: A")
    return ("\n".join(lines) + "\n").encode()


def text_body(rng, pool, size):
    out = [b"Content-Type: text/plain; charset=us-ascii\n\n"]
    have = len(out[0])
    while have < size:
        line = pool[rng.randrange(LINE_POOL)]
        if have + len(line) > size:     # cut the last line: bodies are exactly `size`
            line = line[:size - have - 1] + b"\n"
        out.append(line)
        have += len(line)
    return b"".join(out)


def attachment_body(rng, pool, size):
    boundary = "=_%016x" % rng.getrandbits(64)
    text = text_body(rng, pool, rng.randint(500, 3000)).split(b"\n\n", 1)[1]
    raw = rng.randbytes(size * 3 // 4)
    return b"".join([
        ("Content-Type: multipart/mixed; boundary=\"%s\"\n\n" % boundary).encode(),
        ("--%s\nContent-Type: text/plain\n\n" % boundary).encode(), text,
        ("--%s\nContent-Type: application/octet-stream\n"
         "Content-Transfer-Encoding: base64\n\n" % boundary).encode(),
        base64.encodebytes(raw),
        ("--%s--\n" % boundary).encode(),
    ])


def plan_sizes(rng, messages, total):
    """Body sizes: big ones first drawn, then the small ones scaled to fill the total."""
    big = [i for i in range(messages) if i % BIG_EVERY == BIG_EVERY // 2]
    sizes = [0] * messages
    for i in big:
        sizes[i] = rng.randint(BIG_MIN, BIG_MAX)
    small = [i for i in range(messages) if sizes[i] == 0]
    draws = [min(SMALL_MAX, max(SMALL_MIN, int(rng.lognormvariate(8.8, 0.6)))) for _ in small]
    overhead = 560 * messages     # From_ line, header, separator: measured
    budget = total - sum(sizes) - overhead
    if draws and budget > 0:
        scale = budget / sum(draws)
        for i, d in zip(small, draws):
            sizes[i] = max(200, int(d * scale))
    elif draws:
        for i in small:
            sizes[i] = 200
    return sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", default="1G", help="approximate total, K/M/G suffixes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small", action="store_true",
                    help="only small messages (no attachments), sized to fit --size")
    ap.add_argument("output")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = make_line_pool(rng)
    total = parse_size(args.size)
    if args.small:
        each = max(200, total // max(1, args.messages) - 560)
        sizes = [each] * args.messages
    else:
        sizes = plan_sizes(rng, args.messages, total)
    tmp = args.output + ".tmp"
    with open(tmp, "wb", buffering=1 << 20) as f:
        for n, size in enumerate(sizes):
            f.write(header(rng, n))
            if size >= BIG_MIN:
                f.write(attachment_body(rng, pool, size))
            else:
                f.write(text_body(rng, pool, size))
            f.write(b"\n")     # the empty line before the next From_ line
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
