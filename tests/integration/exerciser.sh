#!/bin/sh
# A random-operation file exerciser, in the spirit of fsx: thousands of
# seeded random writes, reads, truncates, hole punches, zero ranges,
# memory-mapped writes and reads, fsyncs and reopens on a file in the
# mount, each checked against a model of what the file must hold; the
# same with O_DIRECT; then a remount, and the files must still match.
# EXERCISER_SEED and EXERCISER_OPS repeat or lengthen a run.
. "$(dirname "$0")/lib.sh"
require_fuse

SEED=${EXERCISER_SEED:-$(date +%s)}
OPS=${EXERCISER_OPS:-6000}
diag "seed $SEED, $OPS operations per run (EXERCISER_SEED=$SEED to repeat)"
images 2 256M
check "mkfs" fs_mkfs
check "mount" fs_mount

cat >"$T/fsx.py" <<'PY'
import mmap, os, random, sys

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 1, 2, 16
MAXLEN = 1 << 20

def fail(log, msg):
    print("# FAIL: " + msg)
    for line in log[-30:]:
        print("#   " + line)
    sys.exit(1)

def aligned(n):
    return mmap.mmap(-1, max(n, 4096))

def run(path, seed, ops, direct):
    rnd = random.Random(seed)
    model = bytearray()
    log = []
    flags = os.O_RDWR | os.O_CREAT | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags, 0o644)
    unit = 4096 if direct else 1
    def rnd_off(limit):
        return rnd.randrange(0, max(limit, 1)) // unit * unit
    def rnd_len(limit):
        n = rnd.randrange(1, limit + 1)
        return max(unit, n // unit * unit)
    def check_read(off, n):
        if direct:
            buf = aligned(n)
            got = os.preadv(fd, [memoryview(buf)[:n]], off)
            data = bytes(buf[:got])
        else:
            data = os.pread(fd, n, off)
        want = bytes(model[off:off + n])
        if data != want:
            bad = next((i for i in range(min(len(data), len(want))) if data[i] != want[i]), min(len(data), len(want)))
            fail(log, "read %d+%d: got %d bytes, want %d; first difference at +%d" % (off, n, len(data), len(want), bad))
    for i in range(ops):
        op = rnd.choices(["write", "read", "truncate", "punch", "zero", "mapwrite", "mapread", "fsync", "reopen"],
                         [30, 25, 8, 6, 4, 0 if direct else 8, 0 if direct else 8, 4, 2])[0]
        if op == "write":
            off = rnd_off(min(len(model) + 65536, MAXLEN))
            n = rnd_len(65536)
            data = bytes(rnd.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1)
            data = data[:n]
            log.append("%d write %d+%d" % (i, off, n))
            if direct:
                buf = aligned(n); buf[:n] = data
                wrote = os.pwritev(fd, [memoryview(buf)[:n]], off)
            else:
                wrote = os.pwrite(fd, data, off)
            if wrote != n:
                fail(log, "short write %d of %d" % (wrote, n))
            if off > len(model):
                model.extend(bytes(off - len(model)))
            model[off:off + n] = data
        elif op == "read":
            off = rnd_off(len(model) + 4096)
            n = rnd_len(65536)
            log.append("%d read %d+%d" % (i, off, n))
            check_read(off, n)
        elif op == "truncate":
            size = rnd_off(MAXLEN)
            log.append("%d truncate %d" % (i, size))
            os.ftruncate(fd, size)
            if size < len(model):
                del model[size:]
            else:
                model.extend(bytes(size - len(model)))
        elif op in ("punch", "zero") and len(model):
            off = rnd_off(len(model))
            n = rnd_len(min(131072, len(model) - off) or 1)
            mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE if op == "punch" else FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
            log.append("%d %s %d+%d" % (i, op, off, n))
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)) != 0:
                fail(log, "fallocate %s: errno %d" % (op, ctypes.get_errno()))
            end = min(off + n, len(model))
            model[off:end] = bytes(end - off)
        elif op == "mapwrite" and len(model):
            off = rnd_off(len(model))
            n = rnd.randrange(1, min(65536, len(model) - off) + 1)
            data = bytes(rnd.getrandbits(8) for _ in range(n))
            log.append("%d mapwrite %d+%d" % (i, off, n))
            with mmap.mmap(fd, len(model)) as m:
                m[off:off + n] = data
                m.flush()
            model[off:off + n] = data
        elif op == "mapread" and len(model):
            off = rnd_off(len(model))
            n = rnd.randrange(1, min(65536, len(model) - off) + 1)
            log.append("%d mapread %d+%d" % (i, off, n))
            with mmap.mmap(fd, len(model), prot=mmap.PROT_READ) as m:
                if m[off:off + n] != model[off:off + n]:
                    fail(log, "mapped read %d+%d differs" % (off, n))
        elif op == "fsync":
            log.append("%d fsync" % i)
            os.fsync(fd)
        elif op == "reopen":
            log.append("%d reopen" % i)
            os.close(fd)
            fd = os.open(path, flags)
        st = os.fstat(fd)
        if st.st_size != len(model):
            fail(log, "size %d, model %d" % (st.st_size, len(model)))
    check_read(0, len(model))
    os.fsync(fd)
    os.close(fd)
    with open(path + ".model", "wb") as f:
        f.write(model)

if __name__ == "__main__":
    mode, path, seed, ops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    run(path, seed, ops, mode == "direct")
    print("# %s: %d operations, %d bytes at the end" % (path, ops, os.path.getsize(path)))
PY

python3 "$T/fsx.py" buffered "$MNT/fsx" "$SEED" "$OPS" >"$T/fsx.out" 2>&1
ok $? "buffered: $OPS random operations (write, read, truncate, punch, zero range, mmap, fsync, reopen) match the model"
cat "$T/fsx.out"
python3 "$T/fsx.py" direct "$MNT/fsx-direct" "$((SEED + 1))" "$OPS" >"$T/fsx-direct.out" 2>&1
ok $? "O_DIRECT: $OPS random aligned operations match the model"
cat "$T/fsx-direct.out"
mv "$MNT/fsx.model" "$T/" 2>/dev/null; mv "$MNT/fsx-direct.model" "$T/" 2>/dev/null

# Hole punches and zero ranges inside one block, from its start and from
# its middle: exactly those bytes become zero.
check "punch and zero-range inside one block zero exactly their bytes" python3 -c "
import os
p = '$MNT/edges'
with open(p, 'wb') as f: f.write(b'A' * 16384)
fd = os.open(p, os.O_RDWR)
for mode, off, n in ((3, 4096, 100), (0x11, 8192, 10), (3, 12388, 50), (0x11, 100, 20)):
    import ctypes
    assert ctypes.CDLL(None).fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)) == 0
os.close(fd)
d = open(p, 'rb').read()
want = bytearray(b'A' * 16384)
for off, n in ((4096, 100), (8192, 10), (12388, 50), (100, 20)):
    want[off:off + n] = bytes(n)
assert d == bytes(want), [i for i in range(len(d)) if d[i] != want[i]][:8]
"
check "unmount" fs_umount
check "fsck is clean" "$FSCK" -n "$IMAGES"
check "mount again" fs_mount
check "the buffered file matches its model after the remount" cmp "$MNT/fsx" "$T/fsx.model"
check "the O_DIRECT file matches its model after the remount" cmp "$MNT/fsx-direct" "$T/fsx-direct.model"
check "unmount" fs_umount
done_testing
