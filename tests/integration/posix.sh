#!/bin/sh
# The POSIX surface a user expects from a local file system, on a mounted
# two-device dmiofs: files, directories, hard links, symlinks, rename and
# its flags, chmod/chown/utimens, truncate, sparse files with
# SEEK_DATA/SEEK_HOLE, fallocate and punch hole, user xattrs, statfs,
# O_DIRECT, fsync/fdatasync, open-unlinked files, long names, ENOSPC; and
# that every kind of object survives a remount exactly as it was.
#
# The checks that need a system call the shell cannot make (renameat2,
# lseek with SEEK_DATA, fallocate modes, O_DIRECT, errno values) run in a
# python3 helper written below; each prints what differed.
. "$(dirname "$0")/lib.sh"
require_fuse
[ -r /dev/fuse ] && [ -w /dev/fuse ] || skip_all "no access to /dev/fuse"
command -v python3 >/dev/null || skip_all "no python3"


PY="$T/posix.py"
cat >"$PY" <<'EOF'
import ctypes, errno, hashlib, json, mmap, os, stat, sys, time
from fsutil import failures, run_case, segments

libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
KEEP_SIZE, PUNCH_HOLE, COLLAPSE_RANGE, ZERO_RANGE = 0x1, 0x2, 0x8, 0x10
KiB, MiB = 1024, 1024 * 1024

def renameat2(a, b, flags):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)

def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

ROOT = os.getuid() == 0

def ids(uid, gid):
    """Owners to give: any as root, else only one's own."""
    return (uid, gid) if ROOT else (os.getuid(), os.getgid())

def expect(cond, what):
    if not cond:
        failures.append(what)

def show(v):
    if isinstance(v, (bytes, bytearray)) and len(v) > 64:
        return "%d bytes %r..." % (len(v), bytes(v[:32]))
    return repr(v)

def eq(got, want, what):
    if got != want:
        extra = ""
        if isinstance(got, (bytes, bytearray)) and isinstance(want, (bytes, bytearray)):
            n = min(len(got), len(want))
            first = next((i for i in range(n) if got[i] != want[i]), n)
            extra = " (lengths %d and %d, first difference at byte %d)" % (len(got), len(want), first)
        failures.append("%s: got %s, want %s%s" % (what, show(got), show(want), extra))

def raises(err, what, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        if e.errno != err:
            failures.append("%s: errno %s, want %s" % (what, errno.errorcode.get(e.errno, e.errno),
                                                      errno.errorcode[err]))
        return
    failures.append("%s: succeeded, want %s" % (what, errno.errorcode[err]))

def put(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644):
    fd = os.open(path, flags, mode)
    try:
        n = os.write(fd, data)
        assert n == len(data), "short write"
    finally:
        os.close(fd)

def get(path):
    with open(path, "rb") as f:
        return f.read()

def pattern(n, seed):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])

def free_bytes(m):
    """What files may still fill: f_bavail (f_bfree also counts the few
    blocks kept back for truncates and punches on a full file system)."""
    s = os.statvfs(m)
    return s.f_bavail * s.f_frsize

# ---- the tests -------------------------------------------------------------

def t_files(m):
    p = m + "/f"
    data = pattern(300000, 1)
    put(p, data)
    eq(get(p), data, "contents read back")
    st = os.stat(p)
    eq(st.st_size, len(data), "st_size")
    expect(stat.S_ISREG(st.st_mode), "a regular file")
    eq(stat.S_IMODE(st.st_mode), 0o644 & ~current_umask(), "mode from create and umask")
    eq(st.st_nlink, 1, "st_nlink")
    eq(st.st_uid, os.getuid(), "owner")
    # overwrite inside, not block aligned, across a block boundary
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"X" * 5000, 4000)
    os.close(fd)
    want = data[:4000] + b"X" * 5000 + data[9000:]
    eq(get(p), want, "contents after an unaligned overwrite")
    # append
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"tail")
    os.close(fd)
    eq(get(p), want + b"tail", "contents after O_APPEND")
    # write beyond the end leaves zeroes
    q = m + "/g"
    fd = os.open(q, os.O_WRONLY | os.O_CREAT, 0o600)
    os.pwrite(fd, b"end", 10000)
    os.close(fd)
    eq(get(q), b"\0" * 10000 + b"end", "a write past the end reads zeroes before it")
    raises(errno.EEXIST, "O_CREAT|O_EXCL on an existing file", os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    raises(errno.ENOENT, "opening a missing file", os.open, m + "/nope", os.O_RDONLY)
    raises(errno.ENOTDIR, "a file used as a directory", os.open, p + "/x", os.O_RDONLY)
    # O_TRUNC empties it
    fd = os.open(q, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    eq(os.stat(q).st_size, 0, "size after O_TRUNC")
    eq(get(q), b"", "contents after O_TRUNC")
    # mknod: a fifo
    os.mkfifo(m + "/fifo", 0o600)
    expect(stat.S_ISFIFO(os.stat(m + "/fifo").st_mode), "mkfifo makes a fifo")
    os.unlink(p)
    os.unlink(q)
    os.unlink(m + "/fifo")
    raises(errno.ENOENT, "stat after unlink", os.stat, p)
    raises(errno.ENOENT, "unlink of a missing name", os.unlink, p)

def current_umask():
    u = os.umask(0)
    os.umask(u)
    return u

def t_dirs(m):
    d = m + "/d"
    root_links = os.stat(m).st_nlink
    os.mkdir(d, 0o750)
    st = os.stat(d)
    expect(stat.S_ISDIR(st.st_mode), "mkdir makes a directory")
    eq(stat.S_IMODE(st.st_mode), 0o750 & ~current_umask(), "directory mode")
    eq(st.st_nlink, 2, "a new directory's nlink")
    eq(os.stat(m).st_nlink, root_links + 1, "the parent's nlink after mkdir")
    for n in ("a", "b", "c"):
        os.mkdir(d + "/" + n)
    put(d + "/file", b"x")
    eq(os.stat(d).st_nlink, 5, "nlink with three subdirectories")
    eq(sorted(os.listdir(d)), ["a", "b", "c", "file"], "readdir")
    os.makedirs(d + "/a/x/y/z")
    expect(os.path.isdir(d + "/a/x/y/z"), "nested mkdir")
    raises(errno.EEXIST, "mkdir of an existing name", os.mkdir, d + "/a")
    raises(errno.ENOTEMPTY, "rmdir of a non-empty directory", os.rmdir, d + "/a")
    raises(errno.ENOTDIR, "rmdir of a file", os.rmdir, d + "/file")
    raises(errno.EISDIR, "unlink of a directory", os.unlink, d + "/b")
    raises(errno.ENOENT, "mkdir in a missing directory", os.mkdir, d + "/nope/x")
    os.rmdir(d + "/b")
    eq(os.stat(d).st_nlink, 4, "nlink after rmdir")
    raises(errno.ENOENT, "the removed directory is gone", os.stat, d + "/b")
    # readdir of a bigger directory, and while it changes
    for i in range(300):
        put(d + "/c/%03d" % i, b"")
    eq(sorted(os.listdir(d + "/c")), ["%03d" % i for i in range(300)], "readdir of 300 names")
    with os.scandir(d + "/c") as it:
        seen = []
        for e in it:
            seen.append(e.name)
            if len(seen) == 10:
                os.unlink(d + "/c/299")
    expect(len(set(seen)) == len(seen), "no name twice in a readdir that races an unlink")
    # an open directory that is removed
    os.mkdir(d + "/gone")
    fd = os.open(d + "/gone", os.O_RDONLY | os.O_DIRECTORY)
    os.rmdir(d + "/gone")
    eq(os.listdir(fd), [], "a removed directory lists empty")
    raises(errno.ENOENT, "creating in a removed directory", os.open, "/proc/self/fd/%d/new" % fd,
           os.O_WRONLY | os.O_CREAT)
    os.close(fd)

def t_hardlinks(m):
    a, b, c = m + "/ha", m + "/hdir/hb", m + "/hdir/hc"
    os.mkdir(m + "/hdir")
    put(a, b"one")
    os.link(a, b)
    sa, sb = os.stat(a), os.stat(b)
    eq(sa.st_ino, sb.st_ino, "both names are one inode")
    eq((sa.st_nlink, sb.st_nlink), (2, 2), "nlink of both names")
    put(b, b"two, longer", os.O_WRONLY | os.O_TRUNC)
    eq(get(a), b"two, longer", "a write through one name is seen through the other")
    os.link(b, c)
    eq(os.stat(a).st_nlink, 3, "nlink with three names")
    os.unlink(a)
    eq(os.stat(b).st_nlink, 2, "nlink after one name goes")
    eq(get(c), b"two, longer", "contents stay while a name is left")
    raises(errno.EEXIST, "link onto an existing name", os.link, b, c)
    raises(errno.EPERM, "a hard link to a directory", os.link, m + "/hdir", m + "/hdir2")
    raises(errno.ENOENT, "a link to a missing file", os.link, m + "/missing", m + "/x")
    os.unlink(b)
    os.unlink(c)
    os.rmdir(m + "/hdir")

def t_symlinks(m):
    os.mkdir(m + "/sdir")
    put(m + "/sdir/target", b"pointed at")
    os.symlink("target", m + "/sdir/rel")
    os.symlink(m + "/sdir/target", m + "/abs")
    os.symlink("no/such/file", m + "/dangling")
    long_target = "/".join(["d" * 200] * 20)[:4000]
    os.symlink(long_target, m + "/long")
    eq(os.readlink(m + "/sdir/rel"), "target", "readlink of a relative link")
    eq(os.readlink(m + "/abs"), m + "/sdir/target", "readlink of an absolute link")
    eq(os.readlink(m + "/long"), long_target, "readlink of a 4000-byte target")
    st = os.lstat(m + "/sdir/rel")
    expect(stat.S_ISLNK(st.st_mode), "lstat says symlink")
    eq(st.st_size, len("target"), "a symlink's size is its target's length")
    eq(get(m + "/sdir/rel"), b"pointed at", "opening through the link")
    eq(get(m + "/abs"), b"pointed at", "opening through the absolute link")
    raises(errno.ENOENT, "stat of a dangling link", os.stat, m + "/dangling")
    expect(stat.S_ISLNK(os.lstat(m + "/dangling").st_mode), "lstat of a dangling link")
    raises(errno.EEXIST, "symlink onto an existing name", os.symlink, "x", m + "/abs")
    raises(errno.EINVAL, "readlink of a file", os.readlink, m + "/sdir/target")
    # a link to a directory is followed
    os.symlink("sdir", m + "/dirlink")
    eq(sorted(os.listdir(m + "/dirlink")), ["rel", "target"], "listing through a link to a directory")
    # removing the link leaves the target
    os.unlink(m + "/dirlink")
    expect(os.path.isdir(m + "/sdir"), "the target directory stays")
    for n in ("/abs", "/dangling", "/long", "/sdir/rel", "/sdir/target"):
        os.unlink(m + n)
    os.rmdir(m + "/sdir")

def t_rename(m):
    r = m + "/r"
    os.makedirs(r + "/d1")
    os.makedirs(r + "/d2")
    put(r + "/d1/a", b"aaa")
    ino = os.stat(r + "/d1/a").st_ino
    os.rename(r + "/d1/a", r + "/d1/b")
    raises(errno.ENOENT, "the old name is gone", os.stat, r + "/d1/a")
    eq((get(r + "/d1/b"), os.stat(r + "/d1/b").st_ino), (b"aaa", ino), "same inode and contents under the new name")
    os.rename(r + "/d1/b", r + "/d2/b")
    eq(get(r + "/d2/b"), b"aaa", "rename across directories")
    # over an existing file: the old target goes, its open handle still reads
    put(r + "/d2/victim", b"victim")
    fd = os.open(r + "/d2/victim", os.O_RDONLY)
    os.rename(r + "/d2/b", r + "/d2/victim")
    eq(get(r + "/d2/victim"), b"aaa", "rename replaces the target")
    eq(os.fstat(fd).st_nlink, 0, "the replaced file has no name left")
    eq(os.pread(fd, 100, 0), b"victim", "the replaced file still reads through an open handle")
    os.close(fd)
    eq(sorted(os.listdir(r + "/d2")), ["victim"], "one name left")
    put(r + "/linked", b"linked")
    os.link(r + "/linked", r + "/d1/other-name")
    put(r + "/newer", b"newer")
    os.rename(r + "/newer", r + "/linked")
    eq((get(r + "/linked"), get(r + "/d1/other-name")), (b"newer", b"linked"),
       "rename over one name of a hard-linked file")
    eq(os.stat(r + "/d1/other-name").st_nlink, 1, "the replaced inode keeps its other name, nlink 1")
    # directories
    os.makedirs(r + "/d1/sub/inner")
    n1, n2 = os.stat(r + "/d1").st_nlink, os.stat(r + "/d2").st_nlink
    os.rename(r + "/d1/sub", r + "/d2/sub")
    eq((os.stat(r + "/d1").st_nlink, os.stat(r + "/d2").st_nlink), (n1 - 1, n2 + 1),
       "parents' nlink after moving a directory")
    expect(os.path.isdir(r + "/d2/sub/inner"), "the moved directory keeps its contents")
    raises(errno.EINVAL, "moving a directory into itself", os.rename, r + "/d2", r + "/d2/sub/inner/x")
    os.mkdir(r + "/empty")
    os.rename(r + "/empty", r + "/d2/sub/inner")  # replaces an empty directory
    expect(not os.path.exists(r + "/empty") and os.path.isdir(r + "/d2/sub/inner"), "a directory replaces an empty one")
    eq(os.stat(r + "/d2/sub").st_nlink, 3, "nlink after replacing a subdirectory")
    os.mkdir(r + "/full")
    put(r + "/full/x", b"")
    raises(errno.ENOTEMPTY, "rename onto a non-empty directory", os.rename, r + "/d2/sub", r + "/full")
    raises(errno.EISDIR, "a file onto a directory", os.rename, r + "/d2/victim", r + "/full")
    raises(errno.ENOTDIR, "a directory onto a file", os.rename, r + "/full", r + "/d2/victim")
    raises(errno.ENOENT, "renaming a missing name", os.rename, r + "/missing", r + "/x")
    # RENAME_NOREPLACE
    put(r + "/n1", b"n1")
    put(r + "/n2", b"n2")
    raises(errno.EEXIST, "RENAME_NOREPLACE onto an existing name", renameat2, r + "/n1", r + "/n2", RENAME_NOREPLACE)
    eq((get(r + "/n1"), get(r + "/n2")), (b"n1", b"n2"), "both files untouched after the refused rename")
    renameat2(r + "/n1", r + "/n3", RENAME_NOREPLACE)
    eq(get(r + "/n3"), b"n1", "RENAME_NOREPLACE to a free name")
    # RENAME_EXCHANGE: two files
    i2, i3 = os.stat(r + "/n2").st_ino, os.stat(r + "/n3").st_ino
    renameat2(r + "/n2", r + "/n3", RENAME_EXCHANGE)
    eq((get(r + "/n2"), get(r + "/n3")), (b"n1", b"n2"), "RENAME_EXCHANGE swaps two files")
    eq((os.stat(r + "/n2").st_ino, os.stat(r + "/n3").st_ino), (i3, i2), "the inodes swapped names")
    # a file and a directory in different directories
    n1, n2 = os.stat(r + "/d1").st_nlink, os.stat(r + "/d2").st_nlink
    put(r + "/d1/file", b"file")
    renameat2(r + "/d1/file", r + "/d2/sub", RENAME_EXCHANGE)
    expect(os.path.isdir(r + "/d1/file") and os.path.isdir(r + "/d1/file/inner"), "the directory moved to d1")
    eq(get(r + "/d2/sub"), b"file", "the file moved to d2")
    eq((os.stat(r + "/d1").st_nlink, os.stat(r + "/d2").st_nlink), (n1 + 1, n2 - 1),
       "parents' nlink after exchanging a file and a directory")
    raises(errno.ENOENT, "RENAME_EXCHANGE with a missing target", renameat2, r + "/n2", r + "/none", RENAME_EXCHANGE)
    raises(errno.EINVAL, "RENAME_NOREPLACE|RENAME_EXCHANGE", renameat2, r + "/n2", r + "/n3",
           RENAME_NOREPLACE | RENAME_EXCHANGE)
    # renaming a name onto another name of the same inode does nothing
    os.link(r + "/n2", r + "/n2link")
    os.rename(r + "/n2", r + "/n2link")
    expect(os.path.exists(r + "/n2") and os.path.exists(r + "/n2link"), "rename between two links of one inode keeps both")

def t_attrs(m):
    p = m + "/attr"
    put(p, b"x")
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.02)
    os.chmod(p, 0o4751)
    st = os.stat(p)
    eq(stat.S_IMODE(st.st_mode), 0o4751, "chmod sets every mode bit")
    expect(st.st_ctime_ns > c0, "chmod moves ctime")
    os.chown(p, *ids(1234, 5678))
    st = os.stat(p)
    eq((st.st_uid, st.st_gid), ids(1234, 5678), "chown")
    if ROOT:
        eq(stat.S_IMODE(st.st_mode), 0o751, "chown clears set-user-ID")
    os.chown(p, -1, ids(0, 42)[1])
    eq((os.stat(p).st_uid, os.stat(p).st_gid), (ids(1234, 0)[0], ids(0, 42)[1]), "chgrp alone")
    os.utime(p, ns=(1000000123456789, 2000000987654321))
    st = os.stat(p)
    eq((st.st_atime_ns, st.st_mtime_ns), (1000000123456789, 2000000987654321), "utimens to the nanosecond")
    before = time.time_ns()
    os.utime(p)  # UTIME_NOW
    st = os.stat(p)
    expect(abs(st.st_mtime_ns - before) < 5 * 10**9 and abs(st.st_atime_ns - before) < 5 * 10**9,
           "utimens to now: %d %d vs %d" % (st.st_atime_ns, st.st_mtime_ns, before))
    # a write moves mtime
    os.utime(p, ns=(10**18, 10**18))
    put(p, b"new", os.O_WRONLY)
    expect(os.stat(p).st_mtime_ns > 10**18, "a write moves mtime")
    # a directory's mtime moves when an entry is added
    os.mkdir(m + "/adir")
    os.utime(m + "/adir", ns=(10**18, 10**18))
    put(m + "/adir/x", b"")
    expect(os.stat(m + "/adir").st_mtime_ns > 10**18, "creating a name moves the directory's mtime")
    # a set-group-ID directory hands its group down
    os.mkdir(m + "/sgid")
    os.chown(m + "/sgid", *ids(0, 777))
    os.chmod(m + "/sgid", 0o2775)
    put(m + "/sgid/f", b"")
    os.mkdir(m + "/sgid/d")
    eq(os.stat(m + "/sgid/f").st_gid, ids(0, 777)[1], "a file in a set-group-ID directory takes its group")
    eq((os.stat(m + "/sgid/d").st_gid, stat.S_IMODE(os.stat(m + "/sgid/d").st_mode) & 0o2000), (ids(0, 777)[1], 0o2000),
       "a directory in a set-group-ID directory takes its group and the bit")
    # ctime of the inode on link and rename, mtime of the parents
    os.mkdir(m + "/t1")
    os.mkdir(m + "/t2")
    put(m + "/t1/f", b"")
    old = 10**18
    for d in ("/t1", "/t2"):
        os.utime(m + d, ns=(old, old))
    c0 = os.stat(m + "/t1/f").st_ctime_ns
    time.sleep(0.02)
    os.link(m + "/t1/f", m + "/t2/l")
    c1 = os.stat(m + "/t1/f").st_ctime_ns
    expect(c1 > c0, "link moves the inode's ctime")
    expect(os.stat(m + "/t2").st_mtime_ns > old, "link moves the directory's mtime")
    os.utime(m + "/t2", ns=(old, old))
    time.sleep(0.02)
    os.rename(m + "/t1/f", m + "/t2/g")
    expect(os.stat(m + "/t2/g").st_ctime_ns > c1, "rename moves the inode's ctime")
    expect(os.stat(m + "/t1").st_mtime_ns > old and os.stat(m + "/t2").st_mtime_ns > old,
           "rename moves both directories' mtime")
    os.utime(m + "/t2", ns=(old, old))
    os.unlink(m + "/t2/l")
    expect(os.stat(m + "/t2").st_mtime_ns > old, "unlink moves the directory's mtime")
    eq(os.stat(m + "/t2/g").st_nlink, 1, "nlink after unlinking the other name")

def t_truncate(m):
    p = m + "/tr"
    data = pattern(20000, 2)
    put(p, data)
    os.truncate(p, 5000)
    eq(os.stat(p).st_size, 5000, "size after shrinking")
    eq(get(p), data[:5000], "contents after shrinking")
    os.truncate(p, 12000)
    eq(get(p), data[:5000] + b"\0" * 7000, "growing again reads zeroes after the old end")
    os.truncate(p, 3 * MiB)
    eq(os.stat(p).st_size, 3 * MiB, "size after growing to 3 MiB")
    got = get(p)
    eq(got[:5000], data[:5000], "the head survives growing")
    expect(got[5000:] == b"\0" * (3 * MiB - 5000), "the grown part is zeroes")
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 4096)
    eq(os.fstat(fd).st_size, 4096, "ftruncate")
    os.close(fd)
    eq(get(p), data[:4096], "contents after ftruncate to a block boundary")
    os.truncate(p, 0)
    eq((os.stat(p).st_size, get(p)), (0, b""), "truncate to zero")
    eq(os.stat(p).st_blocks, 0, "no blocks after truncate to zero")
    raises(errno.EISDIR, "truncate of a directory", os.truncate, m, 0)
    raises(errno.EINVAL, "truncate to a negative size", os.truncate, p, -1)
    os.unlink(p)

def t_sparse(m):
    p = m + "/sparse"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 8 * MiB)
    a, b = pattern(8192, 3), pattern(4096, 4)
    os.pwrite(fd, a, 0)
    os.pwrite(fd, b, 5 * MiB)
    os.fsync(fd)
    st = os.fstat(fd)
    eq(st.st_size, 8 * MiB, "sparse size")
    eq(st.st_blocks, 3 * 8, "st_blocks counts only the written 4 KiB blocks")
    eq(os.lseek(fd, 0, os.SEEK_DATA), 0, "SEEK_DATA at 0")
    eq(os.lseek(fd, 0, os.SEEK_HOLE), 8192, "SEEK_HOLE at 0")
    eq(os.lseek(fd, 100, os.SEEK_HOLE), 8192, "SEEK_HOLE inside data")
    eq(os.lseek(fd, 8192, os.SEEK_DATA), 5 * MiB, "SEEK_DATA from a hole")
    eq(os.lseek(fd, 8192, os.SEEK_HOLE), 8192, "SEEK_HOLE in a hole is where it starts")
    eq(os.lseek(fd, 5 * MiB + 10, os.SEEK_DATA), 5 * MiB + 10, "SEEK_DATA inside data is where it starts")
    eq(os.lseek(fd, 5 * MiB, os.SEEK_HOLE), 5 * MiB + 4096, "SEEK_HOLE after the second extent")
    raises(errno.ENXIO, "SEEK_DATA in the trailing hole", os.lseek, fd, 5 * MiB + 4096, os.SEEK_DATA)
    eq(os.lseek(fd, 7 * MiB, os.SEEK_HOLE), 7 * MiB, "SEEK_HOLE in the trailing hole")
    raises(errno.ENXIO, "SEEK_DATA at the end of file", os.lseek, fd, 8 * MiB, os.SEEK_DATA)
    raises(errno.ENXIO, "SEEK_HOLE beyond the end of file", os.lseek, fd, 9 * MiB, os.SEEK_HOLE)
    eq(os.pread(fd, 8192, 0), a, "first extent reads back")
    eq(os.pread(fd, 4096, 5 * MiB), b, "second extent reads back")
    expect(os.pread(fd, 5 * MiB - 8192, 8192) == b"\0" * (5 * MiB - 8192), "the hole reads as zeroes")
    expect(os.pread(fd, 3 * MiB, 5 * MiB + 4096) == b"\0" * (3 * MiB - 4096), "the tail reads as zeroes")
    os.close(fd)
    eq(segments(p), [(0, 8192), (5 * MiB, 5 * MiB + 4096)], "data segments")
    q = m + "/dense"
    put(q, pattern(10000, 14))
    fd = os.open(q, os.O_RDONLY)
    eq(os.lseek(fd, 0, os.SEEK_HOLE), 10000, "SEEK_HOLE of a full file is its size")
    eq(os.lseek(fd, 9999, os.SEEK_DATA), 9999, "SEEK_DATA at the last byte")
    os.close(fd)
    eq(os.stat(q).st_blocks, 3 * 8, "st_blocks of a 10000-byte file")
    os.unlink(q)

def t_fallocate(m):
    p = m + "/fa"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, 1 * MiB)
    eq(os.fstat(fd).st_size, 1 * MiB, "fallocate grows the size")
    expect(os.pread(fd, MiB, 0) == b"\0" * MiB, "allocated space reads as zeroes")
    fallocate(fd, KEEP_SIZE, MiB, MiB)
    eq(os.fstat(fd).st_size, 1 * MiB, "FALLOC_FL_KEEP_SIZE keeps the size")
    data = pattern(4 * MiB, 5)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    blocks = os.fstat(fd).st_blocks
    eq(blocks, 4 * MiB // 512, "st_blocks of 4 MiB written")
    # punch a hole with partial blocks at both ends
    fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 1000, 3 * 4096 + 1000)
    eq(os.fstat(fd).st_size, 4 * MiB, "punching keeps the size")
    want = data[:1000] + b"\0" * (3 * 4096 + 1000) + data[1000 + 3 * 4096 + 1000:]
    eq(os.pread(fd, 20000, 0), want[:20000], "punched range reads zeroes, its edges keep their bytes")
    # whole blocks punched: two blocks (4096..12288) are gone
    eq(os.fstat(fd).st_blocks, blocks - 2 * 8, "punching gives back the whole blocks")
    fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 2 * MiB, MiB)
    eq(os.fstat(fd).st_blocks, blocks - 2 * 8 - MiB // 512, "punching 1 MiB gives back 1 MiB")
    eq(segments(p), [(0, 4096), (12288, 2 * MiB), (3 * MiB, 4 * MiB)], "SEEK_DATA/SEEK_HOLE see the holes")
    want = want[:2 * MiB] + b"\0" * MiB + want[3 * MiB:]
    # zero range
    fallocate(fd, ZERO_RANGE, 3 * MiB + 100, 5000)
    want = want[:3 * MiB + 100] + b"\0" * 5000 + want[3 * MiB + 5100:]
    fallocate(fd, ZERO_RANGE, 4 * MiB - 10, 20)  # past the end: grows the file
    want = want[:4 * MiB - 10] + b"\0" * 20
    eq(os.fstat(fd).st_size, 4 * MiB + 10, "FALLOC_FL_ZERO_RANGE past the end grows the file")
    got = os.pread(fd, 5 * MiB, 0)
    expect(got == want, "contents after punch and zero range (first difference at %s)" %
           next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want))))
    raises(errno.EOPNOTSUPP, "PUNCH_HOLE without KEEP_SIZE", fallocate, fd, PUNCH_HOLE, 0, 4096)
    raises(errno.EOPNOTSUPP, "COLLAPSE_RANGE", fallocate, fd, COLLAPSE_RANGE, 0, 4096)
    raises(errno.ENOSPC, "fallocate of more than the file system holds", fallocate, fd, 0, 0, 1 << 40)
    eq(os.fstat(fd).st_size, 4 * MiB + 10, "a refused fallocate leaves the size")
    os.close(fd)
    os.unlink(p)

def t_xattrs(m):
    p = m + "/xa"
    put(p, b"")
    os.mkdir(m + "/xdir")
    binary = bytes(range(256)) * 4
    os.setxattr(p, "user.one", b"1")
    os.setxattr(p, "user.bin", binary)
    os.setxattr(p, "user.empty", b"")
    os.setxattr(m + "/xdir", "user.ondir", b"dir value")
    eq(os.getxattr(p, "user.one"), b"1", "a small value")
    eq(os.getxattr(p, "user.bin"), binary, "a binary value with NULs")
    eq(os.getxattr(p, "user.empty"), b"", "an empty value")
    eq(os.getxattr(m + "/xdir", "user.ondir"), b"dir value", "an xattr on a directory")
    eq(sorted(os.listxattr(p)), ["user.bin", "user.empty", "user.one"], "listxattr")
    raises(errno.EEXIST, "XATTR_CREATE on an existing name", os.setxattr, p, "user.one", b"2", os.XATTR_CREATE)
    raises(errno.ENODATA, "XATTR_REPLACE on a missing name", os.setxattr, p, "user.two", b"2", os.XATTR_REPLACE)
    os.setxattr(p, "user.one", b"replaced", os.XATTR_REPLACE)
    eq(os.getxattr(p, "user.one"), b"replaced", "XATTR_REPLACE")
    big = pattern(65536, 6)
    os.setxattr(p, "user.big", big)
    eq(os.getxattr(p, "user.big"), big, "a 64 KiB value")
    raises(errno.E2BIG, "a value over 64 KiB", os.setxattr, p, "user.huge", b"x" * 65537)
    os.removexattr(p, "user.one")
    raises(errno.ENODATA, "getxattr after removexattr", os.getxattr, p, "user.one")
    raises(errno.ENODATA, "removexattr of a missing name", os.removexattr, p, "user.one")
    raises(errno.ENODATA, "getxattr of a missing name", os.getxattr, p, "user.nothere")
    raises(errno.EPERM, "the inspection names are read-only", os.setxattr, p, "user.dmio.layout", b"x")
    expect(not any(n.startswith("user.dmio.") for n in os.listxattr(p)), "listxattr hides the inspection names")
    expect(os.getxattr(p, "user.dmio.layout").startswith(b"size="), "user.dmio.layout reads")
    # a hard link shares them
    os.link(p, m + "/xa2")
    eq(os.getxattr(m + "/xa2", "user.bin"), binary, "xattrs belong to the inode")
    os.unlink(m + "/xa2")

def t_statfs(m, image_bytes, ndev):
    image_bytes, ndev = int(image_bytes), int(ndev)
    s = os.statvfs(m)
    total = s.f_blocks * s.f_frsize
    eq(s.f_namemax, 255, "f_namemax")
    # mirrored: the usable space is about one device's data area, not the sum
    expect(image_bytes * 0.75 <= total <= image_bytes,
           "f_blocks*f_frsize = %d, want about one image (%d) minus metadata, not %d" %
           (total, image_bytes, ndev * image_bytes))
    expect(s.f_bavail <= s.f_bfree <= s.f_blocks, "bavail <= bfree <= blocks")
    expect(s.f_files > 0 and s.f_ffree <= s.f_files, "inode counts")
    # inodes in use (df -i: f_files - f_ffree) count every file exactly;
    # f_ffree itself is an estimate of what the metadata area still holds
    used0 = s.f_files - s.f_ffree
    os.mkdir(m + "/statfs-dir")
    for i in range(100):
        put(m + "/statfs-dir/%d" % i, b"")
    s2 = os.statvfs(m)
    eq(s2.f_files - s2.f_ffree - used0, 101, "inodes in use rise by one per file made")
    expect(s2.f_ffree < s.f_ffree, "f_ffree falls as files are made")
    for i in range(100):
        os.unlink(m + "/statfs-dir/%d" % i)
    os.rmdir(m + "/statfs-dir")
    deadline = time.time() + 10  # the kernel forgets the removed inodes in its own time
    while True:
        s3 = os.statvfs(m)
        if s3.f_files - s3.f_ffree == used0 or time.time() > deadline:
            break
        time.sleep(0.2)
    eq(s3.f_files - s3.f_ffree, used0, "inodes in use come back down when they are removed")
    eq(s3.f_ffree, s.f_ffree, "f_ffree comes back when they are removed")
    before = free_bytes(m)
    p = m + "/statfs-file"
    put(p, pattern(10 * MiB, 7))
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    used = before - free_bytes(m)
    expect(10 * MiB <= used <= 10 * MiB + 2 * MiB,
           "writing 10 MiB takes %d bytes of free space (mirrored: counted once)" % used)
    os.unlink(p)
    os.sync()
    deadline = time.time() + 10
    while time.time() < deadline and free_bytes(m) < before:
        time.sleep(0.2)
    eq(free_bytes(m), before, "unlink gives the space back")

def t_odirect(m):
    p = m + "/direct"
    size = 2 * MiB
    buf = mmap.mmap(-1, size)
    data = pattern(size, 8)
    buf[:] = data
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    eq(os.pwrite(fd, buf, 0), size, "an O_DIRECT write")
    eq(os.pwrite(fd, memoryview(buf)[:4096], 8 * MiB), 4096, "an O_DIRECT write at 8 MiB")
    rbuf = mmap.mmap(-1, size)
    eq(os.preadv(fd, [rbuf], 0), size, "an O_DIRECT read")
    expect(rbuf[:] == data, "O_DIRECT read returns what O_DIRECT wrote")
    eq(os.fstat(fd).st_size, 8 * MiB + 4096, "size after O_DIRECT writes")
    os.close(fd)
    got = get(p)
    expect(got[:size] == data and got[8 * MiB:] == data[:4096] and got[size:8 * MiB] == b"\0" * (6 * MiB),
           "a buffered read sees the O_DIRECT writes")
    # buffered write, O_DIRECT read of the same bytes
    other = pattern(MiB, 9)
    put(p, other, os.O_WRONLY)
    fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    rbuf2 = mmap.mmap(-1, MiB)
    os.preadv(fd, [rbuf2], 0)
    os.close(fd)
    expect(rbuf2[:] == other, "an O_DIRECT read sees a buffered write")
    # a reader holding cached pages sees a later O_DIRECT write
    reader = os.open(p, os.O_RDONLY)
    eq(os.pread(reader, MiB, 0), other, "buffered read before the O_DIRECT write")
    newer = pattern(MiB, 13)
    buf[:MiB] = newer
    fd = os.open(p, os.O_WRONLY | os.O_DIRECT)
    os.pwrite(fd, memoryview(buf)[:MiB], 0)
    os.close(fd)
    eq(os.pread(reader, MiB, 0), newer, "a cached reader sees the O_DIRECT write")
    os.close(reader)
    # O_DIRECT handles are FUSE direct handles: a private mapping reads,
    # a shared one is refused (dmiofs(8), O_DIRECT)
    fd = os.open(p, os.O_RDWR | os.O_DIRECT)
    with mmap.mmap(fd, MiB, mmap.MAP_PRIVATE, mmap.PROT_READ) as view:
        expect(view[:] == newer, "a private mapping of an O_DIRECT handle reads the file")
    raises(errno.ENODEV, "a shared mapping of an O_DIRECT handle", mmap.mmap, fd, MiB, mmap.MAP_SHARED)
    os.close(fd)
    os.unlink(p)

def t_odirect_setid(m):
    """An O_DIRECT write clears set-user-ID (and set-group-ID with group
    execute) when the writer is not root, as a buffered write does; root's
    write keeps them."""
    if not ROOT:
        return
    buf = mmap.mmap(-1, 4096)
    buf[:] = pattern(4096, 14)
    for mode, left in ((0o6775, 0o775), (0o6764, 0o2764), (0o4755, 0o755)):
        p = m + "/setid-%o" % mode
        put(p, b"x" * 8192, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.chown(p, 65534, 65534)
        os.chmod(p, mode)
        fd = os.open(p, os.O_WRONLY | os.O_DIRECT)
        os.pwrite(fd, buf, 0)
        os.close(fd)
        eq(stat.S_IMODE(os.stat(p).st_mode), mode, "mode %o after root's O_DIRECT write" % mode)
        top = os.open(m, os.O_RDONLY | os.O_DIRECTORY)  # nobody may not pass the test's folder
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(65534)
                os.setuid(65534)
                fd = os.open(os.path.basename(p), os.O_WRONLY | os.O_DIRECT, dir_fd=top)
                os.pwrite(fd, buf, 4096)
                os._exit(0)
            except BaseException:
                os._exit(1)
        eq(os.waitpid(pid, 0)[1], 0, "nobody's O_DIRECT write to a %o file" % mode)
        os.close(top)
        eq(stat.S_IMODE(os.stat(p).st_mode), left, "mode %o after nobody's O_DIRECT write" % mode)
        os.unlink(p)

def t_fsync(m):
    for name, sync in (("fsynced", os.fsync), ("fdatasynced", os.fdatasync)):
        fd = os.open(m + "/" + name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, pattern(3 * MiB + 17, 10 if name == "fsynced" else 11))
        sync(fd)
        os.close(fd)
    fd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    # last, with nothing synced after them: O_DIRECT with O_DSYNC or O_SYNC
    # is durable when the write returns
    buf = mmap.mmap(-1, MiB)
    for name, flag, seed in (("dsync-direct", os.O_DSYNC, 15), ("sync-direct", os.O_SYNC, 16)):
        buf[:] = pattern(MiB, seed)
        fd = os.open(m + "/" + name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT | flag, 0o600)
        for off in range(0, 4 * MiB, MiB):
            os.pwrite(fd, buf, off)
        os.close(fd)

def t_fsync_check(m):
    eq(get(m + "/fsynced"), pattern(3 * MiB + 17, 10), "fsync'd data after kill -9")
    eq(get(m + "/fdatasynced"), pattern(3 * MiB + 17, 11), "fdatasync'd data after kill -9")
    eq(os.stat(m + "/fsynced").st_size, 3 * MiB + 17, "fsync'd size after kill -9")
    for name, seed in (("dsync-direct", 15), ("sync-direct", 16)):
        eq(get(m + "/" + name), pattern(MiB, seed) * 4, "O_DIRECT|O_%s data after kill -9" % name.split("-")[0].upper())

def t_unlinked(m, fifo):
    before = free_bytes(m)
    p = m + "/open-unlinked"
    data = pattern(4 * MiB, 12)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.fsync(fd)
    os.unlink(p)
    raises(errno.ENOENT, "the name is gone", os.stat, p)
    eq(os.fstat(fd).st_nlink, 0, "fstat of an unlinked file: nlink 0")
    eq(os.pread(fd, len(data), 0), data, "an unlinked file reads through its handle")
    os.pwrite(fd, b"more", len(data))
    os.fsync(fd)
    eq(os.pread(fd, 10, len(data)), b"more", "an unlinked file takes writes")
    eq(os.fstat(fd).st_size, len(data) + 4, "and grows")
    expect(free_bytes(m) < before - 3 * MiB, "its space is still used while it is open")
    put(p, b"a new file under the old name")
    eq(os.pread(fd, 4, 0), data[:4], "a new file under the old name is another file")
    os.unlink(p)
    if fifo:  # keep it open for the caller (kill -9 test): say we are ready, wait
        with open(fifo, "w") as f:
            f.write("ready\n")
        time.sleep(3600)
    os.close(fd)
    deadline = time.time() + 10
    while time.time() < deadline and free_bytes(m) < before:
        time.sleep(0.2)
    eq(free_bytes(m), before, "the last close gives the space back")

def t_free_is(m, want):
    deadline = time.time() + 10
    while time.time() < deadline and free_bytes(m) != int(want):
        time.sleep(0.2)
    eq(free_bytes(m), int(want), "free space")

def t_full_ops(m, keep_ref, big_ref):
    """On a full file system: an overwrite fails whole; truncate and punch,
    which give space back, work."""
    eq(free_bytes(m), 0, "the file system is full")
    keep = get(keep_ref)
    fd = os.open(m + "/keep1", os.O_WRONLY)
    raises(errno.ENOSPC, "an overwrite needs new blocks (copy-on-write): ENOSPC", os.pwrite, fd, b"Z" * len(keep), 0)
    os.close(fd)
    eq(get(m + "/keep1"), keep, "the file a refused overwrite was aimed at is unchanged")
    big = get(big_ref)
    eq(get(m + "/big"), big, "the big file reads back whole at ENOSPC")
    size = len(big) // 2 + 100
    os.truncate(m + "/big", size)  # the tail of its new last block is rewritten
    eq(os.stat(m + "/big").st_size, size, "truncate to an unaligned size works when full")
    big = big[:size]
    fd = os.open(m + "/big", os.O_RDWR)
    fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 1000, 3 * MiB)
    os.close(fd)
    big = big[:1000] + bytes(3 * MiB) + big[1000 + 3 * MiB:]
    eq(get(m + "/big"), big, "contents after truncate and an unaligned punch on a full file system")
    os.truncate(m + "/big", size + 5000)
    eq(get(m + "/big"), big + bytes(5000), "growing it again reads zeroes past the old end")
    expect(free_bytes(m) > 8 * MiB, "space came back: %d bytes free" % free_bytes(m))

def t_names(m):
    n255 = "n" * 255
    n256 = "n" * 256
    utf = ("\u00e9" * 127) + "x"  # 255 bytes in UTF-8
    assert len(utf.encode()) == 255
    put(m + "/" + n255, b"255")
    eq(get(m + "/" + n255), b"255", "a 255-byte name")
    os.mkdir(m + "/" + utf)
    expect(os.path.isdir(m + "/" + utf), "a 255-byte UTF-8 directory name")
    expect(n255 in os.listdir(m) and utf in os.listdir(m), "readdir returns the long names")
    raises(errno.ENAMETOOLONG, "creating a 256-byte name", os.open, m + "/" + n256, os.O_WRONLY | os.O_CREAT)
    raises(errno.ENAMETOOLONG, "mkdir of a 256-byte name", os.mkdir, m + "/" + n256)
    raises(errno.ENAMETOOLONG, "rename to a 256-byte name", os.rename, m + "/" + n255, m + "/" + n256)
    raises(errno.ENAMETOOLONG, "stat of a 256-byte name", os.stat, m + "/" + n256)
    os.symlink(n255, m + "/" + utf + "/" + "s" * 255)
    eq(os.readlink(m + "/" + utf + "/" + "s" * 255), n255, "a symlink with a 255-byte name")
    os.link(m + "/" + n255, m + "/" + utf + "/" + "l" * 255)
    os.rename(m + "/" + n255, m + "/" + "m" * 255)
    eq(get(m + "/" + utf + "/" + "l" * 255), b"255", "a hard link with a 255-byte name")
    odd = "sp ace\ttab\nnewline*?[]'\"\\;&|$"
    put(m + "/" + odd, b"odd")
    eq(get(m + "/" + odd), b"odd", "a name with spaces, control and shell characters")

# ---- a manifest of everything, to compare across a remount --------------

def manifest(m):
    out = {}
    for dirpath, dirnames, filenames in os.walk(m):
        dirnames.sort()
        for name in [""] + sorted(dirnames) + sorted(filenames):
            p = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(p, m)
            st = os.lstat(p)
            e = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                 "ino": st.st_ino, "size": st.st_size, "mtime": st.st_mtime_ns, "atime": st.st_atime_ns,
                 "ctime": st.st_ctime_ns, "rdev": st.st_rdev}
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            else:
                e["xattrs"] = {n: os.getxattr(p, n).hex() for n in sorted(os.listxattr(p))}
            if stat.S_ISREG(st.st_mode):
                e["blocks"] = st.st_blocks
                e["segments"] = segments(p)
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(MiB), b""):
                        h.update(chunk)
                e["sha256"] = h.hexdigest()
            if rel == ".":
                e.pop("atime")  # the mount point itself
            out[rel] = e
    return out

def t_populate(m):
    """Every kind of object, with attributes set explicitly."""
    base = m + "/keep"
    os.makedirs(base + "/a/b/c")
    os.mkdir(base + "/empty")
    put(base + "/a/file", pattern(1234567, 20))
    put(base + "/a/b/small", b"small\n")
    put(base + "/zero", b"")
    os.link(base + "/a/file", base + "/a/b/c/hardlink")
    os.link(base + "/a/file", base + "/hardlink2")
    os.symlink("a/b/small", base + "/rel-link")
    os.symlink("/nowhere/at/all", base + "/dangling")
    fd = os.open(base + "/sparse", os.O_RDWR | os.O_CREAT, 0o640)
    os.ftruncate(fd, 64 * MiB)
    os.pwrite(fd, pattern(12288, 21), 4096)
    os.pwrite(fd, pattern(100, 22), 40 * MiB + 50)
    fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 4096 * 2, 4096)
    os.close(fd)
    os.mkfifo(base + "/fifo", 0o600)
    if os.getuid() == 0:  # device nodes keep their numbers
        os.mknod(base + "/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(base + "/blk", 0o600 | stat.S_IFBLK, os.makedev(259, 65539))
    os.chmod(base + "/a/file", 0o2755)
    os.chown(base + "/a/b/small", *ids(4321, 8765))
    os.chmod(base + "/a/b/small", 0o600)
    os.chown(base + "/empty", *ids(99, 98))
    os.chmod(base + "/empty", 0o1777)
    os.lchown(base + "/rel-link", *ids(7, 8))
    os.setxattr(base + "/a/file", "user.comment", b"a file with a comment")
    os.setxattr(base + "/a/file", "user.binary", bytes(range(256)))
    os.setxattr(base + "/a", "user.dir", b"on a directory")
    os.setxattr(base + "/zero", "user.empty", b"")
    os.rename(base + "/a/b/small", base + "/a/b/renamed")
    # directories moved and exchanged across parents
    os.makedirs(base + "/mv/src/sub")
    os.makedirs(base + "/mv/dst/deeper")
    put(base + "/mv/src/sub/in-sub", b"in sub")
    put(base + "/mv/dst/deeper/in-deeper", b"in deeper")
    os.rename(base + "/mv/src/sub", base + "/mv/dst/sub")
    renameat2(base + "/mv/src", base + "/mv/dst/deeper", RENAME_EXCHANGE)
    os.rename(base + "/mv/dst/deeper/", base + "/mv/moved-up")
    put(base + "/x1", b"x1")
    put(base + "/x2", b"x2")
    renameat2(base + "/x1", base + "/x2", RENAME_EXCHANGE)
    os.link(base + "/x1", base + "/mv/x1-link")
    os.setxattr(base + "/x1", "user.gone", b"removed again")
    os.setxattr(base + "/x1", "user.replaced", b"first")
    os.setxattr(base + "/x1", "user.replaced", b"second")
    os.removexattr(base + "/x1", "user.gone")
    fd = os.open(base + "/x2", os.O_WRONLY)
    os.pwrite(fd, b"overwritten", 0)
    os.ftruncate(fd, 5)
    os.close(fd)
    put(base + "/deleted", b"short-lived")
    os.unlink(base + "/deleted")
    # times last: set with touch -d by the shell, and here to the ns
    os.utime(base + "/zero", ns=(111111111123456789, 222222222987654321))
    os.utime(base + "/dangling", ns=(333333333000000001, 444444444000000002), follow_symlinks=False)

def t_fsync_tree(m):
    fd = os.open(m + "/keep/zero", os.O_RDONLY)
    os.fsync(fd)  # every change made so far becomes durable
    os.close(fd)

def t_save(m, path):
    with open(path, "w") as f:
        json.dump(manifest(m + "/keep"), f, indent=1, sort_keys=True)

def t_compare(m, path):
    with open(path) as f:
        want = json.load(f)
    got = json.loads(json.dumps(manifest(m + "/keep")))
    for k in sorted(set(want) | set(got)):
        if k not in got:
            failures.append("%s: missing after remount" % k)
        elif k not in want:
            failures.append("%s: appeared after remount" % k)
        else:
            for f in sorted(set(want[k]) | set(got[k])):
                if want[k].get(f) != got[k].get(f):
                    failures.append("%s: %s was %r, now %r" % (k, f, want[k].get(f), got[k].get(f)))

def t_expect_times(m):
    st = os.stat(m + "/keep/a/b/renamed")
    eq(st.st_mtime_ns, 981173106 * 10**9 + 123456789, "touch -d set the mtime")
    eq(stat.S_IMODE(st.st_mode), 0o600, "mode of the renamed file")
    eq((st.st_uid, st.st_gid), ids(4321, 8765), "owner of the renamed file")
    eq(os.stat(m + "/keep/a/file").st_nlink, 3, "a file with three names")
    eq(os.readlink(m + "/keep/rel-link"), "a/b/small", "symlink target")
    if os.getuid() == 0:
        eq(os.stat(m + "/keep/blk").st_rdev, os.makedev(259, 65539), "a block device's numbers")
        eq(os.stat(m + "/keep/null").st_rdev, os.makedev(1, 3), "a character device's numbers")

def main():
    os.umask(0o022)
    run_case(globals())

main()
EOF

py() {
	name=$1
	shift
	python3 "$PY" "$name" "$MNT" "$@"
}

IMG=256M
IMG_BYTES=$((256 * 1024 * 1024))
images 2 $IMG
must "mkfs.dmiofs makes a two-device file system" fs_mkfs
must "dmiofs mounts it" fs_mount

check "files: create, read, overwrite, append, O_EXCL, O_TRUNC, unlink" py files
check "directories: mkdir, nlink, readdir, rmdir, errors" py dirs
check "hard links: one inode, link counts, errors" py hardlinks
check "symlinks: readlink, following, dangling, long targets" py symlinks
check "rename: files, directories, replace, RENAME_NOREPLACE, RENAME_EXCHANGE" py rename
check "chmod, chown, utimens" py attrs
check "truncate: shrink, grow, zeroes after the old end" py truncate
check "sparse files: st_blocks, SEEK_DATA, SEEK_HOLE, zeroes in holes" py sparse
check "fallocate: allocate, keep size, punch hole, zero range, refusals" py fallocate
check "user xattrs: set, get, list, flags, remove, limits" py xattrs
check "statfs tells the mirrored capacity and the space used once" py statfs $IMG_BYTES 2
check "O_DIRECT reads and writes" py odirect
check "O_DIRECT writes clear set-user-ID for writers other than root" py odirect_setid
check "names up to 255 bytes, and no longer" py names

# Data made durable with fsync/fdatasync survives the daemon's death.
check "fsync, fdatasync and O_DIRECT|O_DSYNC writes return success" py fsync
check "the daemon is killed (kill -9)" fs_kill
must "it mounts again after the kill" fs_mount
check "fsync'd, fdatasync'd and O_DIRECT|O_DSYNC data survived kill -9" py fsync_check

# Open-unlinked files: usable while open, space back at the last close;
# and one open at a kill -9 is reclaimed at the next mount.
check "open-unlinked file: reads, writes, space back at close" py unlinked ""
FREE=$(python3 -c "import os; s=os.statvfs('$MNT'); print(s.f_bavail*s.f_frsize)")
mkfifo "$T/ready"
python3 "$PY" unlinked "$MNT" "$T/ready" >"$T/holder.out" 2>&1 &
HOLDER=$!
read -r _ <"$T/ready"
check "the daemon is killed with an open-unlinked file" fs_kill
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
must "it mounts again" fs_mount
check "the open-unlinked file's space is reclaimed at mount" py free_is "$FREE"

# Persistence: every kind of object, made durable by fsync and found again
# after a kill -9 (the metadata log replayed), then after clean remounts
# (from the checkpoint).
check "a tree of every kind of object is made" py populate
check "touch -d sets a time" touch -h -d "2001-02-03 04:05:06.123456789" "$MNT/keep/a/b/renamed"
check "mtime, mode, owner, links and symlink target are as set" py expect_times
check "the tree is recorded" py save "$T/before.json"
check "fsync makes it durable" py fsync_tree
check "the daemon is killed (kill -9)" fs_kill
must "it mounts again, replaying the log" fs_mount -o verbose
check "the mount did replay log commits" grep -Eq "and [1-9][0-9]* log commit" "$T/daemon.err"
check "after the replay every object is exactly as before" py compare "$T/before.json"
check "the set attributes survived the replay" py expect_times
check "unmount is clean" fs_umount
must "it mounts again" fs_mount
check "after a clean remount every object is exactly as before" py compare "$T/before.json"
check "unmount again" fs_umount
must "it mounts a third time" fs_mount
check "and everything is still as before" py compare "$T/before.json"
check "unmount" fs_umount

# ENOSPC loses nothing already written, and the space comes back.
rm -f "$T"/d*.img
images 2 48M
must "mkfs.dmiofs makes a small file system" fs_mkfs
must "it mounts" fs_mount
head -c 1000000 /dev/urandom >"$T/keep1"
head -c 3000000 /dev/urandom >"$T/keep2"
check "a first file is written" cp "$T/keep1" "$MNT/keep1"
check "a second file is written and synced" sh -c "cp '$T/keep2' '$MNT/keep2' && sync '$MNT/keep2'"
# (bounded by a timeout: a write(2) that never fails would fill nothing forever)
check "filling the file system ends in ENOSPC" sh -c "
	timeout 120 dd if=/dev/urandom of='$MNT/big' bs=1M conv=fsync 2>'$T/dd.err'
	rc=\$?; cat '$T/dd.err'; [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && grep -q 'No space left on device' '$T/dd.err'"
check "the big file holds most of the space" sh -c "[ \$(stat -c %s '$MNT/big') -gt \$((30 * 1024 * 1024)) ]"
check "statfs says (nearly) full" sh -c "[ \$(stat -f -c %a '$MNT') -lt 256 ]"
check "a new file cannot be written while full" sh -c "! dd if=/dev/zero of='$MNT/nope' bs=1M count=2 conv=fsync 2>/dev/null"
check "the last blocks are filled 4 KiB at a time, to ENOSPC" sh -c "
	timeout 120 dd if=/dev/zero of='$MNT/crumbs' bs=4k 2>'$T/dd.err'
	rc=\$?; cat '$T/dd.err'; [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && grep -q 'No space left on device' '$T/dd.err'"
cp "$MNT/big" "$T/big.ref"
check "when full, an overwrite fails whole and truncate and punch hole still work" py full_ops "$T/keep1" "$T/big.ref"
rm -f "$T/big.ref"
check "the first file is intact at ENOSPC" cmp "$T/keep1" "$MNT/keep1"
check "the second file is intact at ENOSPC" cmp "$T/keep2" "$MNT/keep2"
check "metadata operations still work when full" sh -c "mkdir '$MNT/dir' && touch '$MNT/dir/empty' && ln -s x '$MNT/dir/link'"
check "the big file is deleted" rm "$MNT/big" "$MNT/nope" "$MNT/crumbs"
check "the space comes back" sh -c "sync; for i in \$(seq 50); do [ \$(stat -f -c %a '$MNT') -gt 8000 ] && exit 0; sleep 0.2; done; exit 1"
head -c 20000000 /dev/urandom >"$T/after"
check "a new 20 MB file is written after the delete" sh -c "cp '$T/after' '$MNT/after' && sync '$MNT/after'"
check "it reads back" cmp "$T/after" "$MNT/after"
check "unmount after ENOSPC" fs_umount
must "it mounts again" fs_mount
check "the first file survived" cmp "$T/keep1" "$MNT/keep1"
check "the second file survived" cmp "$T/keep2" "$MNT/keep2"
check "the file written after ENOSPC survived" cmp "$T/after" "$MNT/after"
check "the big file stays deleted" test ! -e "$MNT/big"
check "the space stays free after the remount" sh -c "[ \$(stat -f -c %a '$MNT') -gt 3000 ]"
check "filling again ends in ENOSPC" sh -c "
	timeout 120 dd if=/dev/zero of='$MNT/big2' bs=1M 2>'$T/dd.err'
	rc=\$?; cat '$T/dd.err'; [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && grep -q 'No space left on device' '$T/dd.err'"
check "everything is intact after a second ENOSPC" sh -c "cmp '$T/keep1' '$MNT/keep1' && cmp '$T/keep2' '$MNT/keep2' && cmp '$T/after' '$MNT/after'"
check "the second big file is deleted, space comes back" sh -c "rm '$MNT/big2' && sync && for i in \$(seq 50); do [ \$(stat -f -c %a '$MNT') -gt 3000 ] && exit 0; sleep 0.2; done; exit 1"
check "final unmount" fs_umount
done_testing
