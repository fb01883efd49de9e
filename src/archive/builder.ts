// Makes a tree from entries (an archive's members, or a clone's walk) beneath a root directory that
// the caller made for it, by fd only: each member's parent is reached from the root one component at
// a time with O_NOFOLLOW|O_DIRECTORY, so a symlink the archive itself created is never followed (a
// member through it is refused, naming both), new entries are made with O_EXCL/mknodat/symlinkat
// in that parent, and a hard link may only point at a non-directory this same build made.
// Directories get their owner, mode, xattrs and mtime last, deepest first, once nothing more is
// written inside them; everything else gets them as soon as it is complete (chown before chmod, as
// chown clears setuid bits; xattrs after chown, which clears security.capability).
import * as fs from 'node:fs';
import { makedev, type Entry } from './entry';
import { ArchiveError, memberComponents, shown } from './names';
import { chmodAt, chownAt, closeFd, mknodAt, openAt, setTimes, setTimesAt, setXattr } from './sys';
import { at } from './walk';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_DIRECTORY, O_NOFOLLOW, S_IFIFO, S_IFCHR, S_IFBLK, COPYFILE_EXCL, COPYFILE_FICLONE } = fs.constants;

const codeOf = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

export interface BuildStats {
  entries: number;
  bytes: number;
}

export class TreeBuilder {
  readonly stats: BuildStats = { entries: 0, bytes: 0 };
  /** Open directories from the root to the last member's parent: [name, fd]. */
  private stack: [Buffer, number][];
  /** What this build made that a hard link may point at (latin1 of the path), and the directories. */
  private readonly made = new Set<string>();
  private readonly dirs: Entry[] = [];
  private file: { fd: number; e: Entry } | null = null;
  private readonly copyBuf = Buffer.allocUnsafe(1 << 20);

  constructor(root: string | Buffer) {
    this.stack = [[Buffer.alloc(0), fs.openSync(root, O_RDONLY | O_DIRECTORY)]];
  }

  private fail(e: Entry, what: string, err?: unknown): never {
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError(`member "${shown(e.path)}": ${what}${err ? ` (${codeOf(err)})` : ''}; nothing was imported`);
  }

  /** The fd of the member's parent directory (made when missing, as tar does), and its own name. */
  private parentOf(e: Entry): [number, Buffer] {
    const comps = memberComponents(e.path);
    const name = comps.pop()!;
    let depth = 0;
    while (depth < comps.length && depth + 1 < this.stack.length && this.stack[depth + 1][0].equals(comps[depth])) depth++;
    while (this.stack.length > depth + 1) fs.closeSync(this.stack.pop()![1]);
    for (let i = depth; i < comps.length; i++) {
      const parent = this.stack[this.stack.length - 1][1];
      this.stack.push([comps[i], this.enter(e, parent, comps, i)]);
    }
    return [this.stack[this.stack.length - 1][1], name];
  }

  private enter(e: Entry, parent: number, comps: Buffer[], i: number): number {
    const p = at(parent, comps[i]);
    for (let attempt = 0; ; attempt++) {
      try {
        return fs.openSync(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        const code = codeOf(err);
        const through = shown(Buffer.concat(comps.slice(0, i + 1).flatMap((c, j) => (j ? [Buffer.from('/'), c] : [c]))));
        if (code === 'ELOOP' || code === 'ENOTDIR') {
          // O_DIRECTORY may report a symlink as ENOTDIR: lstat says which it is, for the message.
          const link = fs.lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink();
          this.fail(e, `its path goes through "${through}", which is ${link ? 'a symbolic link' : 'not a directory'}; refusing to follow it`);
        }
        if (code !== 'ENOENT' || attempt > 0) this.fail(e, `cannot open directory "${through}"`, err);
        try {
          fs.mkdirSync(p, 0o755);
        } catch (mk) {
          this.fail(e, `cannot create directory "${through}"`, mk);
        }
      }
    }
  }

  /** Makes room for a new entry `name`: an existing non-directory goes (tar's overwrite); a directory stays only for a directory. */
  private clear(e: Entry, dir: number, name: Buffer): boolean {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(at(dir, name));
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return false;
      this.fail(e, 'cannot inspect the existing entry', err);
    }
    if (st.isDirectory()) {
      if (e.kind === 'dir') return true;
      this.fail(e, 'it would replace a directory of the same name');
    }
    if (e.kind === 'hardlink' && Buffer.compare(e.link, e.path) === 0) this.fail(e, 'it is a hard link to itself');
    fs.unlinkSync(at(dir, name));
    this.made.delete(e.path.toString('latin1'));
    return false;
  }

  begin(e: Entry): void {
    this.stats.entries++;
    if (e.path.length === 0) {
      if (e.kind !== 'dir') this.fail(e, 'the root of the archive is not a directory');
      this.dirs.push(e);
      return;
    }
    const [dir, name] = this.parentOf(e);
    const p = at(dir, name);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        this.create(e, dir, name, p);
        if (e.kind !== 'dir') this.made.add(e.path.toString('latin1'));
        return;
      } catch (err) {
        if (codeOf(err) !== 'EEXIST' || attempt > 0) this.fail(e, `cannot create it`, err);
        if (this.clear(e, dir, name)) {
          this.dirs.push(e); // an existing directory: it takes this member's metadata at the end
          return;
        }
      }
    }
  }

  private create(e: Entry, dir: number, name: Buffer, p: Buffer): void {
    switch (e.kind) {
      case 'dir':
        fs.mkdirSync(p, 0o700);
        this.dirs.push(e);
        return;
      case 'file':
        this.file = { fd: openAt(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, () => shown(e.path)), e };
        return;
      case 'symlink':
        fs.symlinkSync(e.link, p);
        break;
      case 'hardlink': {
        if (!this.made.has(e.link.toString('latin1'))) {
          this.fail(e, `it is a hard link to "${shown(e.link)}", which is not a file this archive put earlier; refusing to link outside it`);
        }
        const target = { ...e, path: e.link };
        const [tdir, tname] = this.parentOf(target);
        const tfd = fs.openSync(at(tdir), O_RDONLY | O_DIRECTORY); // keep it: parentOf below may close tdir
        try {
          const [ndir] = this.parentOf(e);
          fs.linkSync(at(tfd, tname), at(ndir, name)); // link(2) never follows a final symlink
        } finally {
          fs.closeSync(tfd);
        }
        return;
      }
      default: {
        const type = e.kind === 'fifo' ? S_IFIFO : e.kind === 'char' ? S_IFCHR : S_IFBLK;
        mknodAt(dir, name, type | 0o600, makedev(e.devMajor, e.devMinor), shown(e.path));
        chownAt(dir, name, e.uid, e.gid, shown(e.path));
        chmodAt(dir, name, e.mode, shown(e.path));
        break;
      }
    }
    if (e.kind === 'symlink') chownAt(dir, name, e.uid, e.gid, shown(e.path));
    for (const [k, v] of e.xattrs) setXattr(-1, p, k, v, shown(e.path));
    setTimesAt(dir, name, e.mtimeNs, shown(e.path));
  }

  data(chunk: Buffer, position: number): void {
    const f = this.file!;
    try {
      for (let done = 0; done < chunk.length; ) done += fs.writeSync(f.fd, chunk, done, chunk.length - done, position + done);
    } catch (err) {
      this.fail(f.e, 'cannot write it', err);
    }
    this.stats.bytes += chunk.length;
  }

  end(e: Entry): void {
    if (!this.file) return;
    const { fd } = this.file;
    this.file = null;
    try {
      if (e.sparse) fs.ftruncateSync(fd, e.sparse.realSize);
      this.finishInode(fd, e);
    } finally {
      closeFd(fd); // opened by openAt
    }
  }

  /** A regular file for a clone: reflinked (FICLONE) where the file system can, else copied in the kernel. */
  copy(e: Entry, src: number): void {
    this.stats.entries++;
    const [dir, name] = this.parentOf(e);
    const p = at(dir, name);
    try {
      if (e.sparse) {
        this.file = { fd: openAt(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, shown(e.path)), e };
        for (const [off, len] of e.sparse.segments) {
          for (let done = 0; done < len; ) {
            const n = fs.readSync(src, this.copyBuf, 0, Math.min(this.copyBuf.length, len - done), off + done);
            if (n === 0) break;
            this.data(this.copyBuf.subarray(0, n), off + done);
            done += n;
          }
        }
        this.end(e);
      } else {
        // /proc/self/fd/<src> reopens exactly the file the walk opened; the destination is created with O_EXCL.
        fs.copyFileSync(at(src), p, COPYFILE_EXCL | COPYFILE_FICLONE);
        const fd = fs.openSync(p, O_WRONLY | O_NOFOLLOW);
        try {
          this.finishInode(fd, e);
        } finally {
          fs.closeSync(fd);
        }
        this.stats.bytes += e.size;
      }
      this.made.add(e.path.toString('latin1'));
    } catch (err) {
      this.fail(e, 'cannot copy it', err);
    }
  }

  private finishInode(fd: number, e: Entry): void {
    // Named only on failure: this runs for every file of an import.
    const what = () => shown(e.path);
    try {
      fs.fchownSync(fd, e.uid, e.gid);
      fs.fchmodSync(fd, e.mode);
      for (const [k, v] of e.xattrs) setXattr(fd, null, k, v, what);
      setTimes(fd, e.mtimeNs, what);
    } catch (err) {
      this.fail(e, 'cannot set its owner, mode, attributes or time', err);
    }
  }

  /** Gives the directories their metadata, deepest first, and closes everything. */
  finish(): void {
    this.close();
    const root = this.stack[0][1];
    const dirs = [...this.dirs].sort((a, b) => b.path.length - a.path.length);
    for (const e of dirs) {
      let fd = root;
      if (e.path.length) {
        const [dir, name] = this.parentOf(e);
        fd = this.enter(e, dir, [name], 0);
      }
      try {
        this.finishInode(fd, e);
      } finally {
        if (fd !== root) fs.closeSync(fd);
      }
    }
    this.close(true);
  }

  /** Closes every fd (also after a failure). */
  close(all = false): void {
    if (this.file) closeFd(this.file.fd);
    this.file = null;
    while (this.stack.length > (all ? 0 : 1)) fs.closeSync(this.stack.pop()![1]);
  }
}
