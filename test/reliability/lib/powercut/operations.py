"""The live side of lazyfs: a pass-through of every FUSE operation to the backing directory, with
the bookkeeping the durable shadow needs -- stable inode ids, names per id, creation states -- and the
fsync/fsyncdir handlers that are the only writers of the shadow. The model is in lazyfs.py's header.
Every handler body is synchronous, so in trio's single thread a cut never lands inside an operation.
"""
import errno
import functools
import os
import stat
import sys
import traceback

import pyfuse3

from durable import DIR, Shadow, Snap, capture, kind_of, xattrs_of
from inodes import ROOT, Inodes




def op(fn):
    """Refuses every operation after a cut, and turns OSError into the errno the kernel expects."""
    @functools.wraps(fn)
    async def run(self, *a):
        if self.frozen:
            raise pyfuse3.FUSEError(errno.EIO)
        try:
            return fn(self, *a)  # synchronous body: a cut can never land in the middle of an op
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO)
        except Exception:  # a bug here must fail the operation, not stop the file system
            traceback.print_exc(file=sys.stderr)
            raise pyfuse3.FUSEError(errno.EIO)
    return run


class LazyFS(Inodes, pyfuse3.Operations):
    def __init__(self, backing):
        pyfuse3.Operations.__init__(self)
        Inodes.__init__(self, os.fsencode(os.path.abspath(backing)))
        self.fh_ino = {}   # open fd -> id
        self.born = {}     # id -> creation Snap, for inodes created since mount
        self.shadow = Shadow()
        self.frozen = False
        self.stats = {'fsyncs': 0, 'fsyncdirs': 0, 'discardedWriteBytes': 0, 'cuts': 0}
        self._adopt(self.root, ROOT)

    def _adopt(self, path, did):
        """At mount all of BACKING is durable: record it, assigning ids (shared by hard links)."""
        st = os.lstat(path)
        snap = capture(path, st, with_content=True)
        self.shadow.nodes[did] = snap
        for name in os.listdir(path):
            p = os.path.join(path, name)
            cst = os.lstat(p)
            ino = self._id(cst, did, name)
            snap.entries[name] = ino
            if ino in self.shadow.nodes:
                continue
            if kind_of(cst.st_mode) == DIR:
                self.shadow.parent_of[ino] = (did, name)
                self._adopt(p, ino)
            else:
                self.shadow.nodes[ino] = capture(p, cst, with_content=True)

    def _entry(self, parent, name):
        st = os.lstat(os.path.join(self._path(parent), name))
        return self._attr(self._id(st, parent, name), st)

    def _born(self, parent, name, ctx):
        """A new inode: give it the caller's ownership (we run as root) and remember its birth."""
        p = os.path.join(self._path(parent), name)
        os.chown(p, ctx.uid, ctx.gid, follow_symlinks=False)
        st = os.lstat(p)
        ino = self._id(st, parent, name)
        self.born[ino] = capture(p, st, with_content=False)
        return self._attr(ino, st)

    # -- operations -------------------------------------------------------------------------
    @op
    def lookup(self, parent, name, ctx):
        if name == b'.':
            return self._attr(parent, self._stat(parent))
        if name == b'..':
            raise OSError(errno.ENOTSUP, 'no ".." lookups')  # not asked for without export
        return self._entry(parent, name)

    @op
    def getattr(self, ino, ctx):
        return self._attr(ino, self._stat(ino))

    @op
    def setattr(self, ino, attr, fields, fh, ctx):
        if self.fh_ino.get(fh) != ino:
            fh = None  # a directory handle is our id, not an fd (and may equal one): go by path
        target = fh if fh is not None else self._path(ino)
        if fields.update_size:
            os.truncate(target, attr.st_size)
        if fields.update_mode:
            os.chmod(target, stat.S_IMODE(attr.st_mode))
        if fields.update_uid or fields.update_gid:
            uid = attr.st_uid if fields.update_uid else -1
            gid = attr.st_gid if fields.update_gid else -1
            if fh is None:
                os.chown(target, uid, gid, follow_symlinks=False)
            else:
                os.chown(target, uid, gid)
        if fields.update_atime or fields.update_mtime:
            st = self._stat(ino)
            at = attr.st_atime_ns if fields.update_atime else st.st_atime_ns
            mt = attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns
            os.utime(target, ns=(at, mt), **({} if fh is not None else {'follow_symlinks': False}))
        return self._attr(ino, self._stat(ino))

    @op
    def readlink(self, ino, ctx):
        return os.readlink(self._path(ino))

    @op
    def mknod(self, parent, name, mode, rdev, ctx):
        os.mknod(os.path.join(self._path(parent), name), mode, rdev)
        return self._born(parent, name, ctx)

    @op
    def mkdir(self, parent, name, mode, ctx):
        os.mkdir(os.path.join(self._path(parent), name), mode)
        return self._born(parent, name, ctx)

    @op
    def symlink(self, parent, name, target, ctx):
        os.symlink(target, os.path.join(self._path(parent), name))
        return self._born(parent, name, ctx)

    @op
    def link(self, ino, new_parent, new_name, ctx):
        os.link(self._path(ino), os.path.join(self._path(new_parent), new_name), follow_symlinks=False)
        return self._entry(new_parent, new_name)

    @op
    def unlink(self, parent, name, ctx):
        self._unlinking(parent, name)
        os.unlink(os.path.join(self._path(parent), name))

    @op
    def rmdir(self, parent, name, ctx):
        p = os.path.join(self._path(parent), name)
        if os.listdir(p):
            raise OSError(errno.ENOTEMPTY, 'directory not empty')
        self._unlinking(parent, name)
        os.rmdir(p)

    @op
    def rename(self, old_parent, old_name, new_parent, new_name, flags, ctx):
        if flags & ~pyfuse3.RENAME_NOREPLACE:
            raise OSError(errno.EINVAL, 'RENAME_EXCHANGE/WHITEOUT are not modelled')
        src = os.path.join(self._path(old_parent), old_name)
        dst = os.path.join(self._path(new_parent), new_name)
        if os.path.lexists(dst):
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise OSError(errno.EEXIST, 'target exists')
            if os.lstat(src).st_ino == os.lstat(dst).st_ino:
                return  # two names of one inode: rename(2) does nothing
            if os.path.isdir(dst) and not os.path.islink(dst) and os.listdir(dst):
                raise OSError(errno.ENOTEMPTY, 'target directory not empty')
            self._unlinking(new_parent, new_name)
        os.rename(src, dst)
        ino = self.by_ino[os.lstat(dst).st_ino]
        self.nodes[ino].links.pop((old_parent, old_name), None)
        self.nodes[ino].links[(new_parent, new_name)] = None

    @op
    def open(self, ino, flags, ctx):
        # O_APPEND is the kernel's business: it already sends the offset to write at.
        fd = os.open(self._path(ino), flags & ~(os.O_CREAT | os.O_EXCL | os.O_APPEND) | os.O_NOFOLLOW)
        return self._opened(ino, fd)

    def _opened(self, ino, fd):
        self.fh_ino[fd] = ino
        self.nodes[ino].fds.add(fd)
        return pyfuse3.FileInfo(fh=fd)

    @op
    def create(self, parent, name, mode, flags, ctx):
        p = os.path.join(self._path(parent), name)
        fd = os.open(p, (flags & ~os.O_APPEND) | os.O_CREAT | os.O_NOFOLLOW, mode)
        attr = self._born(parent, name, ctx)
        return self._opened(attr.st_ino, fd), attr

    @op
    def read(self, fh, off, size):
        return os.pread(fh, size, off)

    @op
    def write(self, fh, off, buf):
        n = os.pwrite(fh, buf, off)
        self.nodes[self.fh_ino[fh]].unsynced += n
        return n

    @op
    def flush(self, fh):
        pass  # close(2) is not a sync

    async def release(self, fh):
        ino = self.fh_ino.pop(fh)  # runs even after a cut: only our fd table is involved
        self.nodes[ino].fds.discard(fh)
        os.close(fh)

    @op
    def fsync(self, fh, datasync):
        # fdatasync too copies metadata: conservative for no-one (it keeps more, never less, than
        # fsync would), and SQLite/hostvol only need data + size to be durable after it.
        ino = self.fh_ino[fh]
        path = b'/proc/self/fd/%d' % fh
        snap = Snap(os.fstat(fh), xattrs_of(path, follow=True))  # the magic link leads to the inode
        with open(path, 'rb') as f:  # our fd may be write-only: read through a fresh one
            snap.data = f.read()
        self.shadow.commit_file(ino, snap)
        self.nodes[ino].unsynced = 0
        self.stats['fsyncs'] += 1

    @op
    def opendir(self, ino, ctx):
        if not stat.S_ISDIR(self._stat(ino).st_mode):
            raise OSError(errno.ENOTDIR, 'not a directory')
        return ino  # directory handles are stateless: readdir lists afresh

    @op
    def readdir(self, ino, start, token):
        path = self._path(ino)
        names = sorted(os.listdir(path))
        for i in range(start, len(names)):
            try:
                attr = self._entry(ino, names[i])
            except FileNotFoundError:
                continue
            if not pyfuse3.readdir_reply(token, names[i], attr, i + 1):
                break

    async def releasedir(self, fh):
        pass

    @op
    def fsyncdir(self, ino, datasync):
        path = self._path(ino)
        live = {}
        for name in os.listdir(path):
            st = os.lstat(os.path.join(path, name))
            live[name] = (self._id(st, ino, name), kind_of(st.st_mode))
        snap = capture(path, os.lstat(path), with_content=False)
        self.shadow.commit_dir(ino, snap, live, self.born, lambda i: bool(self.nodes[i].links))
        self.stats['fsyncdirs'] += 1

    @op
    def statfs(self, ctx):
        v = os.statvfs(self.root)
        s = pyfuse3.StatvfsData()
        for k in ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files', 'f_ffree',
                  'f_favail', 'f_namemax'):
            setattr(s, k, getattr(v, k))
        return s

    @op
    def setxattr(self, ino, name, value, ctx):
        os.setxattr(self._path(ino), name, value, follow_symlinks=False)

    @op
    def getxattr(self, ino, name, ctx):
        return os.getxattr(self._path(ino), name, follow_symlinks=False)

    @op
    def listxattr(self, ino, ctx):
        return [os.fsencode(n) for n in os.listxattr(self._path(ino), follow_symlinks=False)]

    @op
    def removexattr(self, ino, name, ctx):
        os.removexattr(self._path(ino), name, follow_symlinks=False)

    async def forget(self, inode_list):
        pass  # ids stay valid for the mount's life: the shadow refers to them

    # -- control ------------------------------------------------------------------------------
    def cut(self):
        self.frozen = True
        self.stats['discardedWriteBytes'] = sum(n.unsynced for n in self.nodes.values())
        self.shadow.rebuild(self.root, ROOT)
        self.stats['cuts'] += 1
