"""The durable shadow of lazyfs: what a disk would still hold if the power went out now.

One `Snap` per inode id (lazyfs's own ids, never reused within a mount): type, mode, owner, rdev,
xattrs, and the type's content -- file bytes, symlink target, or directory entries name -> id.
Nothing here is updated by ordinary writes; lazyfs.py calls `commit_file` at fsync/fdatasync and
`commit_dir` at fsyncdir, and `rebuild` replaces the backing tree with exactly this state.
The rules (repeated in lazyfs.py's header, which is the specification):
  * fsync of an inode copies its data and metadata (mode, uid, gid, xattrs) here; nothing else does.
  * fsyncdir copies the directory's metadata and its entries. An entry naming an inode that was never
    made durable brings in that inode's *creation* state ("birth"): type, mode, owner and xattrs as
    created, no data (a regular file has size 0), a symlink's target (symlink(2) creates it whole),
    a directory with no entries.
  * A directory has one parent, so its rename is durable as a whole once the target directory is
    synced: the entry is added there and removed from the old durable parent. Until then a sync of
    only the source directory keeps it at its old name. (A regular file renamed and synced only in
    the target shows up under both names after a cut -- a hard link -- which POSIX allows.)
"""
import os
import shutil
import stat

REG, DIR, LNK, OTHER = 'reg', 'dir', 'lnk', 'other'


def kind_of(mode):
    if stat.S_ISREG(mode):
        return REG
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return LNK
    return OTHER  # fifo, socket, device node: recreated with mknod


def xattrs_of(path, follow=False):
    """All xattrs of `path` (bytes) as {bytes name: bytes value}; {} where the fs has none."""
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return {}
    out = {}
    for n in names:
        try:
            out[os.fsencode(n)] = os.getxattr(path, n, follow_symlinks=follow)
        except OSError:
            pass  # removed between list and get: not there
    return out


class Snap:
    __slots__ = ('kind', 'mode', 'uid', 'gid', 'rdev', 'xattrs', 'data', 'target', 'entries')

    def __init__(self, st, xattrs):
        self.kind = kind_of(st.st_mode)
        self.mode, self.uid, self.gid, self.rdev = st.st_mode, st.st_uid, st.st_gid, st.st_rdev
        self.xattrs = xattrs
        self.data = b''
        self.target = b''
        self.entries = {}

    def copy(self):
        s = object.__new__(Snap)
        for k in Snap.__slots__:
            setattr(s, k, getattr(self, k))
        s.entries = dict(self.entries)
        s.xattrs = dict(self.xattrs)
        return s


def capture(path, st, with_content):
    """The live state of the entry at `path` (not followed), content included when asked."""
    snap = Snap(st, xattrs_of(path))
    if snap.kind == LNK:
        snap.target = os.readlink(path)  # part of the symlink's creation, so always captured
    elif with_content and snap.kind == REG:
        with open(path, 'rb') as f:
            snap.data = f.read()
    return snap


class Shadow:
    def __init__(self):
        self.nodes = {}      # id -> Snap
        self.parent_of = {}  # directory id -> (parent id, name) in the durable tree

    def commit_file(self, ino, snap):
        """fsync: the inode's data and metadata are durable. A directory's entries are not touched."""
        old = self.nodes.get(ino)
        if old is not None and old.kind == DIR:
            snap.entries = old.entries
        self.nodes[ino] = snap

    def commit_dir(self, did, snap, live, born, live_elsewhere):
        """fsyncdir: `live` maps each current name to (id, kind); `born` gives creation states;
        `live_elsewhere(id)` tells whether a directory that left this one is linked somewhere else."""
        old = self.nodes.get(did)
        entries = {name: ino for name, (ino, _) in live.items()}
        if old is not None:
            present = set(entries.values())
            for name, ino in old.entries.items():
                gone = name not in entries and ino not in present
                if gone and self._kind(ino) == DIR and live_elsewhere(ino):
                    entries[name] = ino  # moved away: durable only when its new parent is synced
        for name, ino in entries.items():
            if ino not in self.nodes:
                self.nodes[ino] = born[ino].copy()
            if self.nodes[ino].kind == DIR:
                prev = self.parent_of.get(ino)
                if prev is not None and prev != (did, name):
                    self._drop_entry(prev, ino)
                self.parent_of[ino] = (did, name)
        if old is not None:
            for name, ino in old.entries.items():
                if entries.get(name) != ino and self.parent_of.get(ino) == (did, name):
                    del self.parent_of[ino]
        snap.entries = entries
        self.nodes[did] = snap

    def _kind(self, ino):
        n = self.nodes.get(ino)
        return n.kind if n is not None else None

    def _drop_entry(self, where, ino):
        parent = self.nodes.get(where[0])
        if parent is not None and parent.entries.get(where[1]) == ino:
            del parent.entries[where[1]]

    def rebuild(self, root, root_id):
        """Makes the tree at `root` (bytes) exactly the durable state: everything below it is
        removed and recreated, hard links by shared id; `root` itself keeps its inode."""
        for name in os.listdir(root):
            p = os.path.join(root, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        made = {}
        self._fill(root, root_id, made)
        self._apply_meta(root, self.nodes[root_id], existing=True)

    def _fill(self, path, did, made):
        for name, ino in self.nodes[did].entries.items():
            p = os.path.join(path, name)
            s = self.nodes[ino]
            if ino in made:
                if s.kind != DIR:  # the commit_dir rule keeps each directory at one place
                    os.link(made[ino], p, follow_symlinks=False)
                continue
            made[ino] = p
            if s.kind == DIR:
                os.mkdir(p)
                self._fill(p, ino, made)
            elif s.kind == REG:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, s.data)
                finally:
                    os.close(fd)
            elif s.kind == LNK:
                os.symlink(s.target, p)
            else:
                os.mknod(p, s.mode, s.rdev)
            self._apply_meta(p, s, existing=False)

    @staticmethod
    def _apply_meta(p, s, existing):
        os.chown(p, s.uid, s.gid, follow_symlinks=False)  # before chmod: chown clears set-id bits
        if s.kind != LNK:
            os.chmod(p, stat.S_IMODE(s.mode))
        have = xattrs_of(p)
        for name in have:
            if name not in s.xattrs:
                try:
                    os.removexattr(p, name, follow_symlinks=False)
                except OSError:
                    pass  # e.g. a label the host's policy insists on
        for name, value in s.xattrs.items():
            if have.get(name) != value:
                os.setxattr(p, name, value, follow_symlinks=False)
