#!/usr/bin/python3
"""lazyfs: a FUSE pass-through over a backing directory that can forget everything not synced.

Usage: /usr/bin/python3 lazyfs.py BACKING MOUNTPOINT CONTROL_SOCKET
Prints "ready" on stdout once mounted and listening. On the control socket (Unix, one line per
request): "stats" -> JSON counters; "cut" -> freezes (every later operation fails with EIO),
rebuilds BACKING from the durable shadow, answers with JSON counters, and exits, which aborts the
FUSE connection (users of the mount get ENOTCONN). The controller then unmounts and mounts afresh.

THE MODEL -- what survives a cut (the power-cut tests' claims rest on exactly this):
  * At mount, everything in BACKING is durable.
  * Regular file data (writes, truncation, size) becomes durable only at fsync/fdatasync of that
    file (FUSE fsync on a handle of that inode). Unsynced changes are lost: the file reverts to its
    last durable content. A file whose entry became durable but which was never synced has size 0.
  * Directory entries (create, mkdir, mknod, symlink, link, unlink, rmdir, rename in or out) become
    durable only at fsync of that directory (FUSE fsyncdir). An inode not durably linked from the
    root disappears at a cut; an unlinked name whose directory was not synced comes back.
  * Rename: the new name is durable when the target directory is synced, the old name's removal
    when the source directory is synced (a regular file may therefore survive under both names).
    A directory has one parent: syncing the target makes its move durable as a whole, syncing only
    the source keeps it at the old name.
  * Inode metadata (mode, uid, gid, xattrs including security.* and user.*) becomes durable at fsync
    of that inode (file, or directory via fsyncdir). An inode first made durable through a synced
    entry has its creation metadata (mode/owner/xattrs as created, data empty, symlink target).
  * Times (atime/mtime/ctime) are not modelled: after a cut they are the rebuild's.
Everything not stated is not durable. Live operations go straight to BACKING (reads see all).
"""
import json
import os
import resource
import signal
import sys

import pyfuse3
import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from operations import LazyFS  # noqa: E402


async def serve_control(fs, sock_path):
    if os.path.lexists(sock_path):
        os.unlink(sock_path)
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await listener.bind(sock_path)
    listener.listen(4)
    print('ready', flush=True)
    while True:
        sock, _ = await listener.accept()
        async with trio.SocketStream(sock) as conn:
            line = b''
            while not line.endswith(b'\n'):
                chunk = await conn.receive_some(256)
                if not chunk:
                    break
                line += chunk
            cmd = line.strip().decode()
            if cmd == 'cut':
                try:
                    fs.cut()
                    reply = {'ok': True, **fs.stats}
                except Exception as e:  # a failed rebuild must be loud: the test's ground is gone
                    reply = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
                await conn.send_all(json.dumps(reply).encode() + b'\n')
                os._exit(0 if reply['ok'] else 3)  # closing /dev/fuse aborts the connection
            elif cmd == 'stats':
                await conn.send_all(json.dumps({'ok': True, **fs.stats}).encode() + b'\n')
            else:
                await conn.send_all(json.dumps({'ok': False, 'error': f'unknown command {cmd!r}'}).encode() + b'\n')


# How long the FUSE loop may sit in a read of /dev/fuse before the control socket gets a turn.
TICK = 0.1


def keep_reads_interruptible():
    """pyfuse3 (3.2) reads /dev/fuse, a blocking fd, only after trio saw it readable -- but a request
    can vanish in between: when the process that made it is killed before we read it (exactly what a
    power cut does to hostvol), the kernel withdraws it, and read(2) then blocks the one thread, GIL
    held, until some other request arrives. With hostvol dead and the clients stopped none does, so
    the "cut" on the control socket was never answered (the 200-cut run hung at cut 47 this way).
    O_NONBLOCK is no way out (pyfuse3 raises on EAGAIN); an interval timer is: its signal makes the
    read fail with EINTR, which pyfuse3 retries after a trio checkpoint, where the control socket is
    served. Python installs handlers without SA_RESTART, and retries its own syscalls (PEP 475)."""
    signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, TICK, TICK)


def main():
    backing, mountpoint, control = sys.argv[1:4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fs = LazyFS(backing)
    opts = set(pyfuse3.default_options) | {'fsname=lazyfs', 'subtype=lazyfs', 'allow_other'}
    pyfuse3.init(fs, mountpoint, opts)
    keep_reads_interruptible()

    async def run():
        async with trio.open_nursery() as n:
            n.start_soon(serve_control, fs, control)
            await pyfuse3.main()
            n.cancel_scope.cancel()
    try:
        trio.run(run)
    finally:
        pyfuse3.close(unmount=False)


if __name__ == '__main__':
    main()
