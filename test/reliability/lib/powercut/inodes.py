"""lazyfs's live inode table: stable ids for backing inodes and every live name of each.

Ids are lazyfs's own and never reused within a mount, because the durable shadow refers to inodes
by id long after the live inode is gone (an unlinked file comes back at a cut). A backing st_ino
maps to its id only while the backing inode is alive; once its last name goes, the backing file
system may hand the same st_ino to a new file, which must then get a new id.
Names are kept as (parent id, name) per id rather than paths, so renaming a directory needs no
rewrite of everything below it, and hard links are simply several names of one id.
"""
import errno
import os
import stat

import pyfuse3

ROOT = pyfuse3.ROOT_INODE


class Node:
    __slots__ = ('links', 'fds', 'unsynced')

    def __init__(self):
        self.links = {}   # (parent id, name) -> None: every live name, in insertion order
        self.fds = set()  # open backing fds, the only way to reach an inode with no names left
        self.unsynced = 0  # bytes written since this inode's last fsync


class Inodes:
    def __init__(self, root):
        self.root = root  # bytes
        self.nodes = {ROOT: Node()}
        self.by_ino = {os.lstat(root).st_ino: ROOT}  # backing st_ino -> id, live inodes only
        self.next_id = ROOT + 1

    def _id(self, st, parent, name):
        ino = self.by_ino.get(st.st_ino)
        if ino is None:
            ino = self.by_ino[st.st_ino] = self.next_id
            self.next_id += 1
            self.nodes[ino] = Node()
        self.nodes[ino].links[(parent, name)] = None
        return ino

    def _path(self, ino):
        if ino == ROOT:
            return self.root
        node = self.nodes.get(ino)
        if node is None or not node.links:
            raise OSError(errno.ENOENT, 'inode has no name left')
        parent, name = next(iter(node.links))
        return os.path.join(self._path(parent), name)

    def _stat(self, ino):
        node = self.nodes.get(ino)
        if ino != ROOT and node is not None and not node.links and node.fds:
            return os.fstat(next(iter(node.fds)))
        return os.lstat(self._path(ino))

    def _attr(self, ino, st):
        a = pyfuse3.EntryAttributes()
        for k in ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_rdev', 'st_size', 'st_blksize',
                  'st_blocks', 'st_atime_ns', 'st_mtime_ns', 'st_ctime_ns'):
            setattr(a, k, getattr(st, k))
        a.st_ino = ino
        a.entry_timeout = a.attr_timeout = 1.0  # every change passes through the kernel anyway
        return a

    def _unlinking(self, parent, name):
        """Forgets a name about to disappear; a last name frees the backing st_ino for reuse."""
        st = os.lstat(os.path.join(self._path(parent), name))
        ino = self.by_ino.get(st.st_ino)
        if ino is None:
            return
        self.nodes[ino].links.pop((parent, name), None)
        if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
            del self.by_ino[st.st_ino]
