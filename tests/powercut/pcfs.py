"""pcfs: a FUSE file system that models a power cut.

Per inode it keeps what processes see and what is durable. fsync/fdatasync
of a file make its data and size durable; fsync of a directory makes its
entries durable (create, link, rename, unlink, mkdir); nothing else ever
becomes durable by itself. Everything starts durable from --seed DIR.

--cut sync:N   power fails at the Nth durability event (fsync, fdatasync,
               fsync of a directory): that call and every change after it
               are refused with EIO (reads still see the last state)
--cut write:N  the same at the Nth change (write, truncate, create, link,
               rename, unlink, mkdir, chmod, chown, utimens)
--ignore-sync RE  an fsync or fdatasync whose event (as listed in --stats:
               "fsync NAME", "fdatasync NAME", "fsync dir PATH") matches the
               regular expression RE succeeds but makes nothing durable, as in
               a build that left it out (the power-cut walk's test of itself)
--variant strict   the image is exactly the durable state
--variant subset   the image is the durable state plus a random subset (seed
               --rng) of the changes not yet durable: page-sized pieces of
               writes, truncates, directory operations, each applied or not,
               in their original order, skipping what no longer applies
--variant all      ... plus every change made before the cut (the disk wrote
               all it was given): the subset that keeps everything

At unmount the image is written to --image DIR (an ordinary directory: the
files, hard links, modes, owners and mtimes) and the counts of events to
--stats FILE (JSON), with the inode numbers and ctimes of the image, which
--meta FILE gives back to a mount seeded from that image (so that an index
file can recognise its mailbox after the reboot: same device, inode, times).
Locks (fcntl, OFD, flock) are left to the kernel, which
handles them locally on a FUSE mount whose file system has no lock method.

    pcfs.py --seed S --image I --stats F [--cut sync:N] [--variant subset]
            [--ignore-sync RE] MNT
"""
import argparse
import errno
import json
import os
import random
import re
import stat
import sys
import time

try:
    import fusepy
except ImportError:   # python3 of a virtualenv or pyenv: Debian's python3-fusepy
    sys.path.append("/usr/lib/python3/dist-packages")
    import fusepy

PAGE = 4096


class Inode:
    def __init__(self, ino, mode, uid, gid):
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        now = time.time_ns()
        self.atime = self.mtime = self.ctime = now
        if stat.S_ISDIR(mode):
            self.entries = {}          # visible name -> ino
            self.durable_entries = {}
        else:
            self.data = bytearray()
            self.durable_data = b""
            self.durable_mtime = self.durable_ctime = now
        self.pending = []              # changes since the last fsync, in order

    def is_dir(self):
        return stat.S_ISDIR(self.mode)


class KeepAll:
    """The random source of --variant all: every undurable change is kept."""

    def random(self):
        return 1.0


class PowerCut(fusepy.Operations):
    use_ns = True
    flag_nullpath_ok = 1

    def __init__(self, args):
        self.args = args
        self.inodes = {}
        self.next_ino = 1
        self.syncs = 0
        self.writes = 0
        self.cut = None          # (kind, n) of the planned cut
        self.dead = False        # the power is off
        self.dead_at = None
        self.events = []         # names of the durability events, in order
        if args.cut and args.cut != "none":
            kind, n = args.cut.split(":")
            self.cut = (kind, int(n))
        self.meta = {}
        if args.meta:   # inode numbers and ctimes of an earlier image
            with open(args.meta) as f:
                self.meta = json.load(f)["meta"]
            self.next_ino = max([v[0] for v in self.meta.values()] + [1]) + 1
        self.root = self.new_inode(stat.S_IFDIR | 0o755, 0, 0)
        self.load_seed(args.seed, self.root, "")

    # ---- the model ------------------------------------------------------
    def new_inode(self, mode, uid, gid, ino=None):
        if ino is None:
            ino = self.next_ino
            self.next_ino += 1
        node = Inode(ino, mode, uid, gid)
        self.inodes[ino] = node
        return node

    def load_seed(self, path, dnode, rel):
        seen = {}   # (dev, ino) of the seed -> our inode, for hard links
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            st = os.lstat(p)
            meta = self.meta.get(rel + "/" + name)
            ino = meta[0] if meta else None
            if stat.S_ISDIR(st.st_mode):
                node = self.new_inode(st.st_mode, st.st_uid, st.st_gid, ino)
                self.load_seed(p, node, rel + "/" + name)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    node = seen[key]
                else:
                    node = self.new_inode(st.st_mode, st.st_uid, st.st_gid, ino)
                    with open(p, "rb") as f:
                        node.data = bytearray(f.read())
                    node.durable_data = bytes(node.data)
                    seen[key] = node
            else:
                continue
            node.mtime = node.ctime = st.st_mtime_ns
            if meta:
                node.ctime = meta[1]
            if not node.is_dir():
                node.durable_mtime, node.durable_ctime = node.mtime, node.ctime
            dnode.entries[name] = node.ino
            dnode.durable_entries[name] = node.ino
        if dnode is self.root:
            st = os.lstat(path)
            dnode.mode, dnode.uid, dnode.gid = st.st_mode, st.st_uid, st.st_gid

    def lookup(self, path):
        node = self.root
        for part in [p for p in path.split("/") if p]:
            if not node.is_dir() or part not in node.entries:
                raise fusepy.FuseOSError(errno.ENOENT)
            node = self.inodes[node.entries[part]]
        return node

    def parent(self, path):
        head, name = os.path.split(path.rstrip("/"))
        d = self.lookup(head)
        if not d.is_dir():
            raise fusepy.FuseOSError(errno.ENOTDIR)
        return d, name

    def node_of(self, path, fh):
        if fh:
            return self.inodes[fh]
        return self.lookup(path)

    def change(self, what):
        """Every change passes here: counted, refused once the power is off."""
        if self.dead:
            raise fusepy.FuseOSError(errno.EIO)
        self.writes += 1
        if self.cut and self.cut[0] == "write" and self.writes >= self.cut[1]:
            self.power_off(f"write {self.writes} ({what})")
            raise fusepy.FuseOSError(errno.EIO)

    def durability(self, what):
        """Every fsync passes here; False when it is to make nothing durable."""
        if self.dead:
            raise fusepy.FuseOSError(errno.EIO)
        self.syncs += 1
        self.events.append(what)
        if self.cut and self.cut[0] == "sync" and self.syncs >= self.cut[1]:
            self.power_off(f"sync {self.syncs} ({what})")
            raise fusepy.FuseOSError(errno.EIO)
        return not (self.args.ignore_sync and re.search(self.args.ignore_sync, what))

    def power_off(self, where):
        self.dead = True
        self.dead_at = where

    def name_of(self, node):
        for n in self.inodes.values():
            if n.is_dir():
                for name, ino in n.entries.items():
                    if ino == node.ino:
                        return name
        return f"#{node.ino}"

    # ---- the image --------------------------------------------------------
    def durable_file(self, node, rng):
        data = bytearray(node.durable_data)
        mtime, ctime = node.durable_mtime, node.durable_ctime
        if rng:
            for op in node.pending:
                if rng.random() < 0.5:
                    continue
                if op[0] == "w":
                    _, off, piece, t = op
                    if len(data) < off:
                        data.extend(b"\0" * (off - len(data)))
                    data[off:off + len(piece)] = piece
                else:
                    _, length, t = op
                    del data[length:]
                    data.extend(b"\0" * (length - len(data)))
                mtime = ctime = t
        return bytes(data), mtime, ctime

    def durable_entries(self, node, rng):
        ents = dict(node.durable_entries)
        if rng:
            for op in node.pending:
                if rng.random() < 0.5:
                    continue
                if op[0] == "add":
                    ents[op[1]] = op[2]
                elif op[0] == "del":
                    if ents.get(op[1]) == op[2]:
                        del ents[op[1]]
                elif op[0] == "rename":
                    _, old, new, ino = op
                    if ents.get(old) == ino:   # atomic: both or neither
                        del ents[old]
                        ents[new] = ino
        return ents

    def write_image(self, out):
        rng = random.Random(self.args.rng) if self.args.variant == "subset" else \
            KeepAll() if self.args.variant == "all" else None
        os.makedirs(out, exist_ok=True)
        files = {}     # ino -> (data, mtime, ctime), each file once however many links
        made = {}      # ino -> image path (hard links)
        self.image_meta = {}   # path in the image -> [ino, ctime]: what an ordinary directory loses

        def walk(dnode, dest, depth, rel):
            for name, ino in sorted(self.durable_entries(dnode, rng).items()):
                node = self.inodes[ino]
                p = os.path.join(dest, name)
                if node.is_dir():
                    if depth > 20:
                        continue
                    os.makedirs(p, exist_ok=True)
                    self.image_meta[rel + "/" + name] = [ino, node.ctime]
                    walk(node, p, depth + 1, rel + "/" + name)
                    os.chmod(p, stat.S_IMODE(node.mode))
                    os.chown(p, node.uid, node.gid)
                    continue
                if ino not in files:
                    files[ino] = self.durable_file(node, rng)
                data, mtime, ctime = files[ino]
                self.image_meta[rel + "/" + name] = [ino, ctime]
                if ino in made:
                    os.link(made[ino], p)
                    continue
                with open(p, "wb") as f:
                    f.write(data)
                os.chmod(p, stat.S_IMODE(node.mode))
                os.chown(p, node.uid, node.gid)
                os.utime(p, ns=(mtime, mtime))
                made[ino] = p

        walk(self.root, out, 0, "")
        st = self.root
        os.chmod(out, stat.S_IMODE(st.mode))
        os.chown(out, st.uid, st.gid)

    def destroy(self, path):
        if self.args.image:
            self.write_image(self.args.image)
        if self.args.stats:
            with open(self.args.stats, "w") as f:
                json.dump({"syncs": self.syncs, "writes": self.writes, "cut": self.dead_at,
                           "events": self.events, "meta": getattr(self, "image_meta", {})}, f)

    # ---- operations ---------------------------------------------------------
    def getattr(self, path, fh=None):
        node = self.node_of(path, fh)
        nlink = 1
        if node.is_dir():
            nlink = 2 + sum(1 for i in node.entries.values() if self.inodes[i].is_dir())
        else:
            nlink = sum(1 for n in self.inodes.values() if n.is_dir()
                        for i in n.entries.values() if i == node.ino)
        size = 4096 if node.is_dir() else len(node.data)
        return {"st_mode": node.mode, "st_ino": node.ino, "st_nlink": nlink,
                "st_uid": node.uid, "st_gid": node.gid, "st_size": size,
                "st_blocks": (size + 511) // 512, "st_blksize": PAGE,
                "st_atime": node.atime, "st_mtime": node.mtime, "st_ctime": node.ctime}

    def readdir(self, path, fh):
        return [".", ".."] + list(self.lookup(path).entries)

    def statfs(self, path):
        return {"f_bsize": PAGE, "f_frsize": PAGE, "f_blocks": 1 << 20, "f_bfree": 1 << 19,
                "f_bavail": 1 << 19, "f_files": 1 << 16, "f_ffree": 1 << 15, "f_favail": 1 << 15,
                "f_namemax": 255}

    def _add_entry(self, d, name, ino):
        d.entries[name] = ino
        d.pending.append(("add", name, ino))
        d.mtime = d.ctime = time.time_ns()

    def create(self, path, mode, fi=None):
        d, name = self.parent(path)
        if name in d.entries:
            raise fusepy.FuseOSError(errno.EEXIST)
        self.change(f"create {name}")
        uid, gid, _ = fusepy.fuse_get_context()
        node = self.new_inode(stat.S_IFREG | stat.S_IMODE(mode), uid, gid)
        self._add_entry(d, name, node.ino)
        return node.ino

    def mkdir(self, path, mode):
        d, name = self.parent(path)
        if name in d.entries:
            raise fusepy.FuseOSError(errno.EEXIST)
        self.change(f"mkdir {name}")
        uid, gid, _ = fusepy.fuse_get_context()
        node = self.new_inode(stat.S_IFDIR | stat.S_IMODE(mode), uid, gid)
        self._add_entry(d, name, node.ino)

    def open(self, path, flags):
        return self.lookup(path).ino

    def read(self, path, size, offset, fh):
        node = self.node_of(path, fh)
        return bytes(node.data[offset:offset + size])

    def write(self, path, data, offset, fh):
        node = self.node_of(path, fh)
        self.change(f"write {self.name_of(node)} {offset}+{len(data)}")
        if len(node.data) < offset:
            node.data.extend(b"\0" * (offset - len(node.data)))
        node.data[offset:offset + len(data)] = data
        now = time.time_ns()
        node.mtime = node.ctime = now
        # In page-sized pieces: a real disk may keep some pages of a write and not others.
        pos = offset
        end = offset + len(data)
        while pos < end:
            nxt = min(end, (pos // PAGE + 1) * PAGE)
            node.pending.append(("w", pos, bytes(data[pos - offset:nxt - offset]), now))
            pos = nxt
        return len(data)

    def truncate(self, path, length, fh=None):
        node = self.node_of(path, fh)
        if node.is_dir():
            raise fusepy.FuseOSError(errno.EISDIR)
        self.change(f"truncate {self.name_of(node)} {length}")
        del node.data[length:]
        node.data.extend(b"\0" * (length - len(node.data)))
        now = time.time_ns()
        node.mtime = node.ctime = now
        node.pending.append(("t", length, now))

    def fsync(self, path, datasync, fh):
        node = self.node_of(path, fh)
        if not self.durability(f"{'fdatasync' if datasync else 'fsync'} {self.name_of(node)}"):
            return
        if node.is_dir():
            node.durable_entries = dict(node.entries)
        else:
            node.durable_data = bytes(node.data)
            node.durable_mtime, node.durable_ctime = node.mtime, node.ctime
        node.pending = []

    def fsyncdir(self, path, datasync, fh):
        node = self.lookup(path)
        if not self.durability(f"fsync dir {path}"):
            return
        node.durable_entries = dict(node.entries)
        node.pending = []

    def unlink(self, path):
        d, name = self.parent(path)
        if name not in d.entries:
            raise fusepy.FuseOSError(errno.ENOENT)
        if self.inodes[d.entries[name]].is_dir():
            raise fusepy.FuseOSError(errno.EISDIR)
        self.change(f"unlink {name}")
        ino = d.entries.pop(name)
        d.pending.append(("del", name, ino))
        d.mtime = d.ctime = time.time_ns()
        self.inodes[ino].ctime = d.ctime

    def rmdir(self, path):
        d, name = self.parent(path)
        if name not in d.entries:
            raise fusepy.FuseOSError(errno.ENOENT)
        node = self.inodes[d.entries[name]]
        if not node.is_dir():
            raise fusepy.FuseOSError(errno.ENOTDIR)
        if node.entries:
            raise fusepy.FuseOSError(errno.ENOTEMPTY)
        self.change(f"rmdir {name}")
        ino = d.entries.pop(name)
        d.pending.append(("del", name, ino))

    def rename(self, old, new):
        sd, sname = self.parent(old)
        dd, dname = self.parent(new)
        if sname not in sd.entries:
            raise fusepy.FuseOSError(errno.ENOENT)
        ino = sd.entries[sname]
        target = dd.entries.get(dname)
        if target is not None and self.inodes[target].is_dir() != self.inodes[ino].is_dir():
            raise fusepy.FuseOSError(errno.EISDIR if self.inodes[target].is_dir() else errno.ENOTDIR)
        if target is not None and self.inodes[target].is_dir() and self.inodes[target].entries:
            raise fusepy.FuseOSError(errno.ENOTEMPTY)
        self.change(f"rename {sname} {dname}")
        now = time.time_ns()
        if sd is dd:
            del sd.entries[sname]
            sd.entries[dname] = ino
            sd.pending.append(("rename", sname, dname, ino))
        else:   # across directories: each side durable with its own directory
            del sd.entries[sname]
            sd.pending.append(("del", sname, ino))
            dd.entries[dname] = ino
            dd.pending.append(("add", dname, ino))
        sd.mtime = sd.ctime = dd.mtime = dd.ctime = now
        self.inodes[ino].ctime = now

    def link(self, target, source):
        node = self.lookup(source)
        if node.is_dir():
            raise fusepy.FuseOSError(errno.EPERM)
        d, name = self.parent(target)
        if name in d.entries:
            raise fusepy.FuseOSError(errno.EEXIST)
        self.change(f"link {name}")
        self._add_entry(d, name, node.ino)
        node.ctime = time.time_ns()

    def symlink(self, target, source):
        raise fusepy.FuseOSError(errno.EPERM)

    def mknod(self, path, mode, dev):
        raise fusepy.FuseOSError(errno.EPERM)

    def chmod(self, path, mode):
        node = self.lookup(path)
        self.change(f"chmod {path}")
        node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
        node.ctime = time.time_ns()

    def chown(self, path, uid, gid):
        node = self.lookup(path)
        self.change(f"chown {path}")
        if uid != -1 and uid != 0xFFFFFFFF:
            node.uid = uid
        if gid != -1 and gid != 0xFFFFFFFF:
            node.gid = gid
        node.ctime = time.time_ns()

    def utimens(self, path, times=None):
        node = self.lookup(path)
        self.change(f"utimens {path}")
        now = time.time_ns()
        atime, mtime = times if times else (now, now)
        node.atime, node.mtime = atime, mtime
        node.ctime = now

    def access(self, path, amode):
        self.lookup(path)

    def release(self, path, fh):
        return 0

    def flush(self, path, fh):
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", required=True)
    ap.add_argument("--image")
    ap.add_argument("--stats")
    ap.add_argument("--cut", default="none")
    ap.add_argument("--variant", choices=("strict", "subset", "all"), default="strict")
    ap.add_argument("--rng", type=int, default=1)
    ap.add_argument("--ignore-sync", metavar="RE")
    ap.add_argument("--meta", help="the stats file of the image given as --seed")
    ap.add_argument("mountpoint")
    args = ap.parse_args()
    # Locks are the kernel's; no direct_io, so mmap works; attributes and
    # entries are never cached, so every stat sees the model; writes up to
    # 128 KiB arrive whole (the kernel splits them into pages otherwise).
    fusepy.FUSE(PowerCut(args), args.mountpoint, foreground=True, nothreads=True,
                allow_other=True, default_permissions=True, big_writes=True, use_ino=True, hard_remove=True,
                attr_timeout=0, entry_timeout=0, negative_timeout=0, fsname="pcfs")


if __name__ == "__main__":
    main()
