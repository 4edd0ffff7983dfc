#!/bin/sh
# Scale: a 2 GiB sparse file, 20 000 files in one directory, and concurrent
# writers (separate files, appenders, and several writers sharing one file
# at unaligned offsets) on a two-device file system; everything verified
# again after a remount, and every extent's layout on two distinct devices.
. "$(dirname "$0")/lib.sh"
require_fuse
[ -r /dev/fuse ] && [ -w /dev/fuse ] || skip_all "no access to /dev/fuse"
command -v python3 >/dev/null || skip_all "no python3"


PY="$T/scale.py"
cat >"$PY" <<'EOF'
import hashlib, os, random, stat, sys, time
from fsutil import fail, run_case, segments

MiB = 1024 * 1024
GiB = 1024 * MiB
def data(seed, n):
    return random.Random(seed).randbytes(n)

# ---- a 2 GiB sparse file ---------------------------------------------------

SPARSE_SIZE = 2 * GiB
# (offset, length): aligned, unaligned, across the 1 GiB mark, the very end
SPARSE_WRITES = [(0, 3 * MiB), (700 * MiB + 12345, 3 * MiB), (GiB - 3 * MiB // 2, 3 * MiB),
                 (SPARSE_SIZE - 3 * MiB, 3 * MiB)]

def sparse_expected_blocks():
    blocks = set()
    for off, n in SPARSE_WRITES:
        blocks.update(range(off // 4096, (off + n - 1) // 4096 + 1))
    return blocks

def sparse_segments():
    segs = []
    for b in sorted(sparse_expected_blocks()):
        if segs and segs[-1][1] == b * 4096:
            segs[-1][1] = (b + 1) * 4096
        else:
            segs.append([b * 4096, (b + 1) * 4096])
    return [tuple(s) for s in segs]

def t_sparse_write(m):
    fd = os.open(m + "/sparse", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, SPARSE_SIZE)
    for i, (off, n) in enumerate(SPARSE_WRITES):
        buf = data(100 + i, n)
        done = 0
        while done < n:
            done += os.pwrite(fd, buf[done:done + MiB], off + done)
    os.fsync(fd)
    os.close(fd)

def t_sparse_check(m):
    p = m + "/sparse"
    st = os.stat(p)
    if st.st_size != SPARSE_SIZE:
        fail("size %d, want %d" % (st.st_size, SPARSE_SIZE))
    want_blocks = len(sparse_expected_blocks()) * 8
    if st.st_blocks != want_blocks:
        fail("st_blocks %d, want %d (only the written 4 KiB blocks)" % (st.st_blocks, want_blocks))
    got = segments(p)
    if got != sparse_segments():
        fail("SEEK_DATA/SEEK_HOLE segments %r, want %r" % (got, sparse_segments()))
    # every byte: the writes where they were written, zeroes elsewhere
    fd = os.open(p, os.O_RDONLY)
    want = {}
    for i, (off, n) in enumerate(SPARSE_WRITES):
        want[i] = data(100 + i, n)
    zero = bytes(4 * MiB)
    pos = 0
    while pos < SPARSE_SIZE:
        n = min(4 * MiB, SPARSE_SIZE - pos)
        got = os.pread(fd, n, pos)
        if len(got) != n:
            fail("short read at %d: %d of %d" % (pos, len(got), n))
            break
        exp = bytearray(zero[:n])
        for i, (off, ln) in enumerate(SPARSE_WRITES):
            s, e = max(off, pos), min(off + ln, pos + n)
            if s < e:
                exp[s - pos:e - pos] = want[i][s - off:e - off]
        if got != exp:
            first = next(j for j in range(n) if got[j] != exp[j])
            fail("byte %d differs" % (pos + first))
            break
        pos += n
    os.close(fd)

# ---- 20 000 files in one directory ---------------------------------------------

NFILES = 20000

def name(i):
    return "file-%05d-%s" % (i, "x" * (i % 50))

def t_many_create(m):
    d = m + "/many"
    os.mkdir(d)
    for i in range(NFILES):
        fd = os.open(d + "/" + name(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if i % 1000 == 0:
            os.write(fd, b"content of %d\n" % i)
        os.close(fd)

def t_many_check(m):
    d = m + "/many"
    names = os.listdir(d)
    if len(names) != NFILES:
        fail("%d names, want %d" % (len(names), NFILES))
    if set(names) != {name(i) for i in range(NFILES)}:
        fail("the names differ from those created")
    for i in list(range(0, NFILES, 997)) + [NFILES - 1]:
        st = os.stat(d + "/" + name(i))
        want = len(b"content of %d\n" % i) if i % 1000 == 0 else 0
        if not stat.S_ISREG(st.st_mode) or st.st_size != want or st.st_nlink != 1:
            fail("%s: mode %o size %d nlink %d" % (name(i), st.st_mode, st.st_size, st.st_nlink))
        if i % 1000 == 0:
            with open(d + "/" + name(i), "rb") as f:
                if f.read() != b"content of %d\n" % i:
                    fail("%s: wrong contents" % name(i))
    if os.stat(d).st_nlink != 2:
        fail("directory nlink %d, want 2" % os.stat(d).st_nlink)

def t_many_delete(m):
    d = m + "/many"
    for i in range(NFILES):
        os.unlink(d + "/" + name(i))
    if os.listdir(d):
        fail("%d names left after deleting all" % len(os.listdir(d)))
    os.rmdir(d)

# ---- concurrent writers ------------------------------------------------------------

WRITERS, WRITER_BYTES = 8, 16 * MiB
APPENDERS, APPENDS = 4, 400
SHARERS, SHARED_RECORD, SHARED_RECORDS = 4, 1000, 2000
LOGGERS, LOG_LINES = 4, 500

def writer_data(w):
    return data(1000 + w, WRITER_BYTES)

def append_record(a, i):
    return data(2000 + a * 100000 + i, 1 + (i * 7919 + a) % 9000)

def shared_record(i):
    return data(3000 + i, SHARED_RECORD)

def writer(m, w):
    buf = writer_data(w)
    rnd = random.Random(w)
    fd = os.open(m + "/w%d" % w, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pos = 0
    while pos < len(buf):  # pieces of random sizes, not aligned
        n = min(rnd.randint(1, 2 * MiB), len(buf) - pos)
        pos += os.write(fd, buf[pos:pos + n])
    os.close(fd)
    with open(m + "/w%d" % w, "rb") as f:
        if f.read() != buf:
            print("writer %d: its file reads back wrong" % w)
            return 1
    return 0

def appender(m, a):
    fd = os.open(m + "/a%d" % a, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range(APPENDS):
        os.write(fd, append_record(a, i))
    os.close(fd)
    return 0

def log_line(a, i):
    body = data(4000 + a * 100000 + i, 1 + (i * 31 + a) % 300).hex().encode()
    return b"%d %d %s\n" % (a, i, body)

def logger(m, a):
    fd = os.open(m + "/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range(LOG_LINES):
        line = log_line(a, i)
        if os.write(fd, line) != len(line):
            print("logger %d: short write" % a)
            return 1
    os.close(fd)
    return 0

def sharer(m, s):
    fd = os.open(m + "/shared", os.O_WRONLY | os.O_CREAT, 0o644)
    for i in range(s, SHARED_RECORDS, SHARERS):  # neighbours share 4 KiB blocks
        os.pwrite(fd, shared_record(i), i * SHARED_RECORD)
    os.close(fd)
    return 0

def t_concurrent(m):
    pids = []
    for w in range(WRITERS):
        pids.append(("writer %d" % w, lambda w=w: writer(m, w)))
    for a in range(APPENDERS):
        pids.append(("appender %d" % a, lambda a=a: appender(m, a)))
    for s in range(SHARERS):
        pids.append(("sharer %d" % s, lambda s=s: sharer(m, s)))
    for a in range(LOGGERS):
        pids.append(("logger %d" % a, lambda a=a: logger(m, a)))
    running = {}
    for what, fn in pids:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = fn()
            except Exception as e:
                print("%s: %s" % (what, e))
            sys.stdout.flush()
            os._exit(code)
        running[pid] = what
    for pid, what in running.items():
        _, status = os.waitpid(pid, 0)
        if status:
            fail("%s failed (status %d)" % (what, status))

def t_concurrent_check(m):
    for w in range(WRITERS):
        with open(m + "/w%d" % w, "rb") as f:
            if f.read() != writer_data(w):
                fail("w%d: contents differ" % w)
    for a in range(APPENDERS):
        want = b"".join(append_record(a, i) for i in range(APPENDS))
        with open(m + "/a%d" % a, "rb") as f:
            got = f.read()
        if got != want:
            fail("a%d: %d bytes, want %d, contents %s" % (a, len(got), len(want),
                                                          "differ" if len(got) == len(want) else "differ in length"))
    # one log appended to by several processes: every line whole, once, in order
    with open(m + "/log", "rb") as f:
        log = f.read()
    want_bytes = sum(len(log_line(a, i)) for a in range(LOGGERS) for i in range(LOG_LINES))
    if len(log) != want_bytes:
        fail("log: %d bytes, want %d" % (len(log), want_bytes))
    nxt = [0] * LOGGERS
    for n, line in enumerate(log.split(b"\n")[:-1]):
        try:
            a, i = (int(x) for x in line.split(b" ")[:2])
            good = line + b"\n" == log_line(a, i) and i == nxt[a]
        except (ValueError, IndexError):
            good = False
        if not good:
            fail("log: line %d is torn, mixed or out of order: %r" % (n, line[:60]))
            break
        nxt[a] += 1
    if nxt != [LOG_LINES] * LOGGERS:
        fail("log: lines per logger %r, want %d each" % (nxt, LOG_LINES))
    want = b"".join(shared_record(i) for i in range(SHARED_RECORDS))
    with open(m + "/shared", "rb") as f:
        got = f.read()
    if got != want:
        bad = [i for i in range(SHARED_RECORDS) if got[i * SHARED_RECORD:(i + 1) * SHARED_RECORD] != shared_record(i)]
        fail("shared: %d bytes (want %d), %d of %d records wrong, first %s" %
             (len(got), len(want), len(bad), SHARED_RECORDS, bad[:5]))

# ---- the layout: every extent on `copies` distinct devices ----------------------------

def read_layout(path):
    """user.dmio.layout, every page of it joined, one header."""
    text = os.getxattr(path, "user.dmio.layout").decode()
    lines = text.splitlines()
    head, body = lines[0], [l for l in lines[1:] if not l.startswith("more ")]
    more = [l for l in lines if l.startswith("more ")]
    while more:
        name = dict(kv.split("=", 1) for kv in more[0].split()[1:])["name"]
        page = os.getxattr(path, name).decode().splitlines()
        body += [l for l in page[1:] if not l.startswith("more ")]
        more = [l for l in page if l.startswith("more ")]
    return "\n".join([head] + body) + "\n"

def t_layout(m, copies, *names):
    copies = int(copies)
    for n in names:
        try:
            text = read_layout(m + "/" + n)
        except OSError as e:
            fail("%s: getxattr user.dmio.layout: %s (%d bytes, %d blocks of 4 KiB mapped)" %
                 (n, e, os.stat(m + "/" + n).st_size, os.stat(m + "/" + n).st_blocks // 8))
            continue
        head = dict(kv.split("=") for kv in text.splitlines()[0].split())
        extents, regions = {}, {}
        for line in text.splitlines()[1:]:
            kind, *kvs = line.split()
            kv = dict(x.split("=", 1) for x in kvs)
            if kind == "extent":
                extents[kv["index"]] = kv
            elif kind == "region":
                regions.setdefault(kv["extent"], []).append(kv)
        if int(head["extents"]) != len(extents) or not extents:
            fail("%s: %s extents announced, %d listed" % (n, head["extents"], len(extents)))
        st = os.stat(m + "/" + n)
        if int(head["size"]) != st.st_size or int(head["blocks"]) * 8 != st.st_blocks:
            fail("%s: layout says size=%s blocks=%s, stat says %d and %d sectors" %
                 (n, head["size"], head["blocks"], st.st_size, st.st_blocks))
        total = 0
        for i, e in extents.items():
            r = regions.get(i, [])
            devs = {x["device"] for x in r}
            if len(r) != copies or len(devs) != copies:
                fail("%s: extent %s has %d regions on devices %s, want %d distinct" % (n, i, len(r), sorted(devs), copies))
            if any(int(x["count"]) * 512 != int(e["length"]) or x["state"] != "healthy" for x in r):
                fail("%s: extent %s: a region's length or state is wrong: %r" % (n, i, r))
            total += int(e["length"])
        if total != st.st_blocks * 512:
            fail("%s: extents cover %d bytes, st_blocks says %d" % (n, total, st.st_blocks * 512))

def main():
    run_case(globals())

main()
EOF

py() {
	name=$1
	shift
	python3 "$PY" "$name" "$MNT" "$@"
}

START=$(date +%s)
images 2 512M
must "mkfs.dmiofs makes a two-device file system" fs_mkfs --meta-size 64M
must "dmiofs mounts it" fs_mount

check "a 2 GiB sparse file is written at four places" py sparse_write
check "its contents, st_blocks and SEEK_DATA/SEEK_HOLE are right" py sparse_check
check "its layout has every extent on two distinct devices" py layout 2 sparse

check "20 000 files are created in one directory" py many_create
check "ls counts 20 000" sh -c "[ \$(ls '$MNT/many' | wc -l) -eq 20000 ]"
check "their names, sizes and contents are right" py many_check

check "8 writers, 4 appenders, 4 writers sharing a file and 4 appending to one log run at once" py concurrent
check "every file holds what its writers wrote" py concurrent_check
check "the writers' layouts have every extent on two distinct devices" \
	py layout 2 w0 w1 w2 w3 w4 w5 w6 w7
check "the appended and shared files' layouts (many extents) can be read, on two distinct devices" \
	py layout 2 a0 a1 a2 a3 shared
check "status is healthy" sh -c "getfattr --only-values --absolute-names -n user.dmio.status '$MNT' | grep -qx status=healthy"

check "unmount" fs_umount
must "it mounts again" fs_mount
check "the sparse file is intact after the remount" py sparse_check
check "ls counts 20 000 after the remount" sh -c "[ \$(ls '$MNT/many' | wc -l) -eq 20000 ]"
check "the 20 000 files are intact after the remount" py many_check
check "the concurrent writers' files are intact after the remount" py concurrent_check
check "the layouts are still on two distinct devices" py layout 2 sparse w0 w1 w2 w3 w4 w5 w6 w7
check "the appended and shared files' layouts too" py layout 2 a0 a1 a2 a3 shared
check "the 20 000 files are deleted" py many_delete
check "the sparse file is deleted" rm "$MNT/sparse"
check "unmount" fs_umount
must "it mounts again" fs_mount
check "the deleted files stay deleted" sh -c "[ ! -e '$MNT/many' ] && [ ! -e '$MNT/sparse' ]"
check "the others are still intact" py concurrent_check
check "final unmount" fs_umount
diag "run time: $(($(date +%s) - START)) s"
done_testing
