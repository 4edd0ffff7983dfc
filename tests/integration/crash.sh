#!/bin/sh
# Crash safety: the daemon is killed (kill -9, which stands for a power
# cut of the daemon's side) at a random instant while a writer and fio are
# busy on the mount; after every crash fsck.dmiofs -n must find nothing to
# repair and the file system must mount again, every byte the writer had
# fsync'd must be there, the names and attributes must be consistent
# (listed, stat'd, read), and, read straight from the image files once
# unmounted, the copies of every extent of every file (user.dmio.layout
# gives device, sector, count) must hold the same bytes.
#
# Rounds:
#   data 1..N  the writer (records numbered and checksummed; appends with
#              4 KiB, 1000-byte and O_DIRECT records; passes of overwrites),
#              fio (verify=crc32c, O_DIRECT and buffered) and a metadata
#              worker (mkdir, create, symlink, link, rename, unlink, rmdir,
#              chmod, xattrs, truncate, with an fsync every few) run
#              together with -o commit=200 (even rounds also with -o
#              writeback, the kernel's writeback cache, where the daemon
#              has the option), killed after a random delay;
#              the names must then be what some prefix of the metadata
#              operations made, no shorter than the last fsync;
#   fsync      with -o commit=60000 (the timer never commits), a new
#              directory and a new file in it; the daemon is killed the
#              moment fsync returns: name, data and directory survive;
#              a file unlinked while open at the crash gives its space
#              back at the next mount;
#   restart    killed while writing; then killed again while mounting
#              (log replay, the mount's checkpoint) and while unmounting
#              (the final checkpoint), several times: it still mounts and
#              the fsync'd records are there;
#   rename     a storm of renames between directories, killed at random:
#              every file is under exactly one of its names, none lost;
#   truncate   a file truncated into a block and written back, again and
#              again, while another thread fsyncs: after each of several
#              kills the file is whole or truncated, never the old size
#              with the tail of the kept block zeroed (truncate is one
#              operation; its zeroing must not be durable without it).
#
# CRASH_ROUNDS (default 5, 3 under the sanitizers), CRASH_TRUNCATES (kills in the truncate round,
# default 12) and CRASH_SEED (default: from the clock, shown) may be set;
# a failing run is repeated with the same CRASH_SEED (the instants of the
# kills still vary with the scheduling).
. "$(dirname "$0")/lib.sh"
require_fuse
command -v python3 >/dev/null || skip_all "no python3"
command -v fio >/dev/null || skip_all "no fio"
command -v getfattr >/dev/null || skip_all "no getfattr (Debian package attr)"

ROUNDS=${CRASH_ROUNDS:-$([ -n "${DMIOFS_SANITIZED:-}" ] && echo 3 || echo 5)}
SEED=${CRASH_SEED:-$(date +%s)}
diag "CRASH_SEED=$SEED CRASH_ROUNDS=$ROUNDS"
PY="$T/crashlib.py"

# ---- the helpers (python3) --------------------------------------------------
cat >"$PY" <<'EOF'
import errno, hashlib, mmap, os, random, signal, stat, struct, sys, time

PAGE = 4096
SIZES = {'a': 4096, 'b': 1000, 'd': 4096}   # record sizes of the append files
CAPS = {'a': 512, 'b': 1200, 'd': 512}      # at most this many records each
BATCH = {'a': (1, 12), 'b': (4, 16), 'd': (1, 12)}  # records between fsyncs
OV_N, OV_SIZE = 24, 3000                    # the overwritten file: 24 records


def record(fid, n, size):
    """Record n of file fid: a header (magic, file, number, size), then
    bytes that follow from the header; any wrong byte shows."""
    head = struct.pack('<4s2sII', b'DREC', fid.encode().ljust(2, b'_'), n, size)
    seed = hashlib.sha256(head).digest()
    return head + (seed * (size // 32 + 1))[:size - len(head)]


def expected_stream(fid, size, nbytes):
    n = nbytes // size + 1
    return b''.join(record(fid, i, size) for i in range(n))[:nbytes]


def overwrite_version(p):
    return b''.join(record('o', p * 1000 + i, OV_SIZE) for i in range(OV_N))


def enter(mnt, d):
    """Make d and work inside it: relative names through a working folder
    on the mount cannot reach the folder under the mount point once the
    dead mount is cleared; they fail (ENOTCONN) instead."""
    parent = os.path.dirname(os.path.abspath(mnt))
    if os.stat(mnt).st_dev == os.stat(parent).st_dev:
        raise SystemExit('%s is not mounted' % mnt)
    os.makedirs(d, 0o755, exist_ok=True)
    os.chdir(d)
    if os.stat('.').st_dev != os.stat(mnt).st_dev:
        raise SystemExit('%s is not on the mount' % d)


def fail(msg):
    print(msg)
    global failed
    failed = True


failed = False

# ---- writer ---------------------------------------------------------------------


def writer(mnt, d, logpath, seed):
    """Write records until the mount goes away.  After each fsync (or
    fdatasync) returns, the log on the local disk says what is durable:
    'a N' (records 0..N-1 of d/a), 'o P' (pass P of d/o complete)."""
    rnd = random.Random(seed)
    log = open(logpath, 'a', buffering=1)
    note = lambda s: (log.write(s + '\n'), log.flush())
    try:
        enter(mnt, d)
        fds = {f: os.open(f, os.O_WRONLY | os.O_CREAT, 0o644) for f in ('a', 'b', 'o')}
        fds['d'] = os.open('d', os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
        dbuf = mmap.mmap(-1, BATCH['d'][1] * PAGE)  # page aligned, for O_DIRECT
        count = {f: 0 for f in SIZES}
        opass = 0
        note('start')
        while True:
            live = [f for f in SIZES if count[f] < CAPS[f]] + ['o']
            f = rnd.choice(live)
            if f == 'o':
                for i in range(OV_N):
                    os.pwrite(fds['o'], record('o', opass * 1000 + i, OV_SIZE), i * OV_SIZE)
                os.fsync(fds['o'])
                note('o %d' % opass)
                opass += 1
                continue
            n = min(rnd.randint(*BATCH[f]), CAPS[f] - count[f])
            size = SIZES[f]
            if f == 'd':
                for k in range(n):
                    dbuf[k * PAGE:(k + 1) * PAGE] = record('d', count[f] + k, size)
                os.pwrite(fds['d'], memoryview(dbuf)[:n * PAGE], count[f] * size)
            else:  # one write(2) a batch, so a batch is one extent (the layout stays short)
                os.pwrite(fds[f], b''.join(record(f, count[f] + k, size) for k in range(n)), count[f] * size)
            if rnd.random() < 0.5:
                os.fsync(fds[f])
            else:
                os.fdatasync(fds[f])
            count[f] += n
            note('%s %d' % (f, count[f]))
    except OSError as e:
        note('end %s' % errno.errorcode.get(e.errno, e.errno))


# ---- checks -----------------------------------------------------------------------


def durable_of(logpath):
    dur = {'a': 0, 'b': 0, 'd': 0, 'o': -1}
    started = False
    for line in open(logpath):
        w = line.split()
        if w[0] == 'start':
            started = True
        elif w[0] in dur:
            dur[w[0]] = int(w[1])
    return dur, started


def check_append(path, fid, size, durable):
    need = durable * size
    if not os.path.exists(path):
        if durable:
            fail('%s: missing, but %d records were fsync\'d' % (path, durable))
        return
    data = open(path, 'rb').read()
    if len(data) < need:
        fail('%s: %d bytes, but %d records (%d bytes) were fsync\'d' % (path, len(data), durable, need))
        return
    exp = expected_stream(fid, size, len(data))
    if data[:need] != exp[:need]:
        bad = next(i for i in range(need) if data[i] != exp[i])
        fail('%s: fsync\'d record %d is wrong (byte %d: %02x, expected %02x)'
             % (path, bad // size, bad, data[bad], exp[bad]))
        return
    # Past what was fsync'd: each page is a prefix of what was written,
    # then zeroes (not yet written back, or a hole); nothing else.
    for start in range(need // PAGE * PAGE, len(data), PAGE):
        pg, e = data[start:start + PAGE], exp[start:start + PAGE]
        if pg == e:
            continue
        k = next(i for i in range(len(pg)) if pg[i] != e[i])
        if pg[k:] != bytes(len(pg) - k):
            fail('%s: byte %d past the fsync\'d records holds neither what was written nor zero'
                 % (path, start + k))
            return


def check_overwrite(path, durable_pass):
    if not os.path.exists(path):
        if durable_pass >= 0:
            fail('%s: missing, but pass %d was fsync\'d' % (path, durable_pass))
        return
    data = open(path, 'rb').read()
    total = OV_N * OV_SIZE
    if durable_pass >= 0 and len(data) != total:
        fail('%s: %d bytes, not %d' % (path, len(data), total))
        return
    versions = [overwrite_version(p) for p in (durable_pass, durable_pass + 1) if p >= 0]
    if durable_pass < 0:
        versions.append(bytes(total))
    # Pages are written back whole; a page holds pieces of two records,
    # each from the fsync'd pass or the one after.
    for i in range(OV_N):
        s = i * OV_SIZE
        while s < min((i + 1) * OV_SIZE, len(data)):
            e = min((s // PAGE + 1) * PAGE, (i + 1) * OV_SIZE, len(data))
            if not any(v[s:e] == data[s:e] for v in versions):
                fail('%s: record %d (bytes %d-%d) is from no pass in %d..%d'
                     % (path, i, s, e, durable_pass, durable_pass + 1))
                return
            s = e


def cmd_records(d, logpath):
    dur, started = durable_of(logpath)
    if not started:
        print('# the writer never started in %s' % d)
        return
    for f, size in SIZES.items():
        check_append(os.path.join(d, f), f, size, dur[f])
    check_overwrite(os.path.join(d, 'o'), dur['o'])
    print('# %s: durable a=%d b=%d d=%d o=%d' % (d, dur['a'], dur['b'], dur['d'], dur['o']))


T_CRC = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    T_CRC.append(_c)


def fio_crc32c(b):
    """fio's crc32c: initial ~0, no final inversion."""
    c = 0xffffffff
    t = T_CRC
    for x in b:
        c = t[(c ^ x) & 0xff] ^ (c >> 8)
    return c


def cmd_fio(d, *specs):
    """Every block of fio's files (name:bs) is zero (laid out, never
    written) or a whole block fio wrote there: header crc, offset, data
    crc32c all right.  A block mixing two writes or holding stale bytes
    fails."""
    for spec in specs:
        name, bs = spec.split(':')
        bs = int(bs)
        path = os.path.join(d, name)
        if not os.path.exists(path):
            continue
        data = open(path, 'rb').read()
        zero = bytes(bs)
        written = 0
        for off in range(0, len(data), bs):
            blk = data[off:off + bs]
            if blk == zero[:len(blk)]:
                continue
            magic, vt, ln, seed, o = struct.unpack('<HHIQQ', blk[:24])
            hcrc, dcrc = struct.unpack('<II', blk[36:44])
            if magic != 0xacca or ln != bs or o != off or len(blk) != bs:
                fail('%s: block at %d is not a fio block written there (magic %x len %d offset %d)'
                     % (path, off, magic, ln, o))
                return
            if hcrc != fio_crc32c(blk[:36]) or dcrc != fio_crc32c(blk[44:]):
                fail('%s: block at %d fails its crc32c (a torn or stale block)' % (path, off))
                return
            written += 1
        print('# %s: %d written blocks verified' % (path, written))


def cmd_walk(mnt):
    """List and stat everything; read every file to its end."""
    nfiles = ndirs = 0
    for root, dirs, files in os.walk(mnt):
        st = os.lstat(root)
        sub = sum(1 for x in dirs if stat.S_ISDIR(os.lstat(os.path.join(root, x)).st_mode))
        if st.st_nlink != 2 + sub:
            fail('%s: a directory with %d subdirectories has %d links' % (root, sub, st.st_nlink))
        names = os.listdir(root)
        if len(names) != len(set(names)):
            fail('%s: a name is listed twice' % root)
        ndirs += 1
        for f in files:
            p = os.path.join(root, f)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                os.readlink(p)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            n = 0
            with open(p, 'rb') as fh:
                while True:
                    b = fh.read(1 << 20)
                    if not b:
                        break
                    n += len(b)
            if n != st.st_size:
                fail('%s: size %d, but %d bytes read' % (p, st.st_size, n))
            if st.st_nlink < 1:
                fail('%s: a listed file with no link' % p)
            nfiles += 1
    os.statvfs(mnt)
    print('# %d directories, %d files listed, stat\'d and read' % (ndirs, nfiles))


def cmd_mirrors(*layouts):
    """Both copies of every extent, read from the image files (unmounted),
    must be byte-identical; every extent has two copies on two devices."""
    nexts = 0
    for lay in layouts:
        want = None
        ext = {}
        for line in open(lay):
            w = line.split()
            kv = dict(x.split('=', 1) for x in w[1:] if '=' in x) if w and w[0] in ('extent', 'region') else {}
            if w and w[0].startswith('size='):
                want = int(dict(x.split('=', 1) for x in w)['copies'])
            elif w and w[0] == 'region':
                ext.setdefault(int(kv['extent']), []).append(kv)
        for e, regs in sorted(ext.items()):
            nexts += 1
            if len(regs) != want or len({r['device'] for r in regs}) != len(regs):
                fail('%s: extent %d has copies on devices %s' % (lay, e, [r['device'] for r in regs]))
                continue
            copies = []
            for r in regs:
                with open(r['path'], 'rb') as fh:
                    fh.seek(int(r['sector']) * 512)
                    copies.append(fh.read(int(r['count']) * 512))
            if any(len(c) != int(regs[0]['count']) * 512 for c in copies):
                fail('%s: extent %d: a copy reaches past the end of its image' % (lay, e))
            elif any(c != copies[0] for c in copies[1:]):
                blocks = [b for b in range(len(copies[0]) // PAGE)
                          if len({c[b * PAGE:(b + 1) * PAGE] for c in copies}) > 1]
                fail('%s: extent %d: the mirrors differ in %d of %d blocks (first: block %d; %s)'
                     % (lay, e, len(blocks), len(copies[0]) // PAGE, blocks[0],
                        ', '.join('%s sector %s' % (r['path'], r['sector']) for r in regs)))
    print('# %d extents compared in %d files' % (nexts, len(layouts)))


# ---- metadata operations: a prefix of them survives ---------------------------


class Model:
    """What the namespace under the worker's folder should be: names to
    directories, files (by inode) and symlinks, and the inodes' mode, size
    and user xattrs."""

    def __init__(self):
        self.ent = {'': {'t': 'd', 'mode': 0o755}}
        self.ino = {}
        self.next_ino = 0

    def children(self, d):
        pre = d + '/' if d else ''
        return [p for p in self.ent if p != d and p.startswith(pre) and '/' not in p[len(pre):]]

    def apply(self, o):
        op, p = o['op'], o.get('p')
        gone = None
        if op == 'mkdir':
            self.ent[p] = {'t': 'd', 'mode': 0o755}
        elif op == 'create':
            self.ino[self.next_ino] = {'mode': 0o644, 'size': 0, 'x': {}, 'nlink': 1}
            self.ent[p] = {'t': 'f', 'ino': self.next_ino}
            self.next_ino += 1
        elif op == 'symlink':
            self.ent[p] = {'t': 'l', 'target': o['t']}
        elif op == 'link':
            self.ent[p] = dict(self.ent[o['src']])
            self.ino[self.ent[p]['ino']]['nlink'] += 1
        elif op == 'rename':
            src = o['src']
            gone = self.ent.get(p)
            moved = {q: e for q, e in self.ent.items() if q == src or q.startswith(src + '/')}
            for q in moved:
                del self.ent[q]
            for q, e in moved.items():
                self.ent[p + q[len(src):]] = e
        elif op in ('unlink', 'rmdir'):
            gone = self.ent.pop(p)
        elif op == 'chmod':
            e = self.ent[p]
            (self.ino[e['ino']] if e['t'] == 'f' else e)['mode'] = o['m']
        elif op == 'setx':
            self.ino[self.ent[p]['ino']]['x'][o['k']] = o['v']
        elif op == 'rmx':
            del self.ino[self.ent[p]['ino']]['x'][o['k']]
        elif op == 'trunc':
            self.ino[self.ent[p]['ino']]['size'] = o['s']
        if gone and gone['t'] == 'f':
            i = self.ino[gone['ino']]
            i['nlink'] -= 1
            if not i['nlink']:
                del self.ino[gone['ino']]

    def state(self):
        names, groups = {}, {}
        for p, e in self.ent.items():
            if e['t'] == 'd':
                names[p] = ('d', e['mode'])
            elif e['t'] == 'l':
                names[p] = ('l', e['target'])
            else:
                i = self.ino[e['ino']]
                names[p] = ('f', i['mode'], i['size'], i['nlink'], tuple(sorted(i['x'].items())))
                groups.setdefault(e['ino'], set()).add(p)
        return names, frozenset(frozenset(g) for g in groups.values() if len(g) > 1)


def actual_state(root):
    names, groups = {}, {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            full = os.path.join(d, n)
            p = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                names[p] = ('d', stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                names[p] = ('l', os.readlink(full))
            else:
                x = tuple(sorted((k, os.getxattr(full, k).decode()) for k in os.listxattr(full)))
                names[p] = ('f', stat.S_IMODE(st.st_mode), st.st_size, st.st_nlink, x)
                groups.setdefault(st.st_ino, set()).add(p)
    names[''] = ('d', stat.S_IMODE(os.lstat(root).st_mode))
    return names, frozenset(frozenset(g) for g in groups.values() if len(g) > 1)


def next_op(m, rnd, n):
    """A random operation valid in the model (names never repeat)."""
    dirs = [p for p, e in m.ent.items() if e['t'] == 'd']
    files = [p for p, e in m.ent.items() if e['t'] == 'f']
    nondirs = [p for p, e in m.ent.items() if e['t'] != 'd']
    new = lambda pre: os.path.join(rnd.choice(dirs), '%s%d' % (pre, n)).lstrip('/')
    crowded = len(m.ent) > 120
    while True:
        k = rnd.choice(['mkdir', 'create', 'create', 'symlink', 'link', 'rename', 'rename', 'unlink', 'unlink',
                        'rmdir', 'chmod', 'setx', 'rmx', 'trunc'] + (['unlink', 'rmdir'] * 4 if crowded else []))
        if k == 'mkdir' and not crowded:
            return {'op': 'mkdir', 'p': new('d')}
        if k == 'create' and not crowded:
            return {'op': 'create', 'p': new('f')}
        if k == 'symlink' and not crowded:
            return {'op': 'symlink', 'p': new('l'), 't': 'target-%d' % n}
        if k == 'link' and files and not crowded:
            return {'op': 'link', 'src': rnd.choice(files), 'p': new('h')}
        if k == 'rename' and len(m.ent) > 1:
            src = rnd.choice([p for p in m.ent if p])
            to = [d for d in dirs if d != src and not d.startswith(src + '/')]
            e = m.ent[src]
            victims = [p for p in files if e['t'] == 'f' and m.ent[p]['ino'] != e['ino']] if e['t'] == 'f' else []
            if victims and rnd.random() < 0.3:  # over an existing file
                return {'op': 'rename', 'src': src, 'p': rnd.choice(victims), 'replace': True}
            return {'op': 'rename', 'src': src, 'p': os.path.join(rnd.choice(to), 'r%d' % n).lstrip('/')}
        if k == 'unlink' and nondirs:
            return {'op': 'unlink', 'p': rnd.choice(nondirs)}
        if k == 'rmdir':
            empty = [d for d in dirs if d and not m.children(d)]
            if empty:
                return {'op': 'rmdir', 'p': rnd.choice(empty)}
        if k == 'chmod' and len(m.ent) > 1:
            p = rnd.choice([p for p, e in m.ent.items() if p and e['t'] != 'l'] or [''])
            if p:
                return {'op': 'chmod', 'p': p, 'm': rnd.choice([0o600, 0o640, 0o644, 0o700, 0o750, 0o755])}
        if k == 'setx' and files:
            return {'op': 'setx', 'p': rnd.choice(files), 'k': 'user.k%d' % rnd.randrange(3), 'v': 'v%d' % n}
        if k == 'rmx':
            withx = [(p, x) for p in files for x in m.ino[m.ent[p]['ino']]['x']]
            if withx:
                p, x = rnd.choice(withx)
                return {'op': 'rmx', 'p': p, 'k': x}
        if k == 'trunc' and files:
            return {'op': 'trunc', 'p': rnd.choice(files), 's': rnd.randrange(0, 3 * 4096 + 1, 512)}


def do_op(root, o):
    P = lambda q: os.path.join(root, q)
    op = o['op']
    if op == 'mkdir':
        os.mkdir(P(o['p']), 0o755)
    elif op == 'create':
        os.close(os.open(P(o['p']), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    elif op == 'symlink':
        os.symlink(o['t'], P(o['p']))
    elif op == 'link':
        os.link(P(o['src']), P(o['p']))
    elif op == 'rename':
        os.rename(P(o['src']), P(o['p']))
    elif op == 'unlink':
        os.unlink(P(o['p']))
    elif op == 'rmdir':
        os.rmdir(P(o['p']))
    elif op == 'chmod':
        os.chmod(P(o['p']), o['m'])
    elif op == 'setx':
        os.setxattr(P(o['p']), o['k'], o['v'].encode())
    elif op == 'rmx':
        os.removexattr(P(o['p']), o['k'])
    elif op == 'trunc':
        os.truncate(P(o['p']), o['s'])


def meta_worker(mnt, root, logpath, seed):
    """Metadata operations one after another; each is logged (on the
    local disk) before it is made, and 'sync N' after an fsync that
    followed the first N returned."""
    import json
    os.umask(0)
    rnd = random.Random(seed)
    log = open(logpath, 'a', buffering=1)
    m = Model()
    n = 0
    try:
        enter(mnt, root)
        root = '.'
        os.chmod(root, 0o755)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)
        log.write('sync 0\n')
        next_sync = rnd.randint(5, 40)
        while True:
            o = next_op(m, rnd, n)
            log.write('op %s\n' % json.dumps(o))
            do_op(root, o)
            m.apply(o)
            n += 1
            if n >= next_sync:
                files = [p for p, e in m.ent.items() if e['t'] == 'f']
                if files and rnd.random() < 0.5:
                    fd = os.open(os.path.join(root, rnd.choice(files)), os.O_RDONLY)
                else:
                    fd = os.open(os.path.join(root, rnd.choice([p for p, e in m.ent.items() if e['t'] == 'd'])),
                                 os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(fd)
                os.close(fd)
                log.write('sync %d\n' % n)
                next_sync = n + rnd.randint(5, 40)
    except OSError as e:
        log.write('end %s\n' % errno.errorcode.get(e.errno, e.errno))


def cmd_meta(root, logpath):
    """The names under root are what the logged operations made, up to
    some operation at or after the last fsync: no fsync'd operation lost,
    none applied out of order, none half done."""
    import json
    ops, synced, ended = [], None, None
    for line in open(logpath):
        w = line.split(' ', 1)
        if w[0] == 'op':
            ops.append(json.loads(w[1]))
        elif w[0] == 'sync':
            synced = int(w[1])
        elif w[0] == 'end':
            ended = w[1].strip()
    if synced is None:
        print('# the metadata worker never synced')
        return
    if ended not in ('ENOTCONN', 'ECONNABORTED'):
        fail('the metadata worker stopped with %s' % ended)
    actual = actual_state(root)
    m = Model()
    for o in ops[:synced]:
        m.apply(o)
    best = None
    for j in range(synced, len(ops) + 1):
        st = m.state()
        if st == actual:
            print('# %s: the state after operation %d of %d (fsync\'d: %d)' % (root, j, len(ops), synced))
            return
        diff = sorted(set(st[0].items()) ^ set(actual[0].items()))
        if best is None or len(diff) < len(best[1]):
            best = (j, diff, st[1] != actual[1])
        if j < len(ops):
            m.apply(ops[j])
    j, diff, links = best
    show = ['%s: %s here, %s after op %d' % (p, actual[0].get(p, 'absent'), m_state_get(ops, synced, j, p), j)
            for p in sorted({d[0] for d in diff})[:8]]
    fail('%s: the names are no prefix of the operations (fsync\'d: %d, logged: %d); nearest is after op %d: %s%s'
         % (root, synced, len(ops), j, '; '.join(show), '; hard links differ' if links else ''))


def m_state_get(ops, synced, j, p):
    m = Model()
    for o in ops[:j]:
        m.apply(o)
    return m.state()[0].get(p, 'absent')


# ---- the fsync round ----------------------------------------------------------


def used_bytes(mnt):
    """Bytes allocated on device 0 (user.dmio.devices on the root)."""
    for line in os.getxattr(mnt, 'user.dmio.devices').decode().splitlines():
        kv = dict(x.split('=', 1) for x in line.split() if '=' in x)
        if kv.get('device') == '0':
            return int(kv['used'])
    raise SystemExit('no device 0 in user.dmio.devices')


def cmd_fsync_kill(mnt, pid, expect, usedfile):
    """An 8 MiB file written, fsync'd and unlinked while still open (an
    orphan at the crash); then a new directory (and one inside), a new
    file there, fsync'd, and the daemon killed the moment fsync returns."""
    open(usedfile, 'w').write('%d\n' % used_bytes(mnt))
    orphan = os.path.join(mnt, 'orphan')
    ofd = os.open(orphan, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(ofd, os.urandom(8 << 20))
    os.fsync(ofd)
    os.unlink(orphan)
    data = os.urandom(100000)
    open(expect, 'wb').write(data)
    d = os.path.join(mnt, 'fresh', 'sub')
    os.makedirs(d)
    fd = os.open(os.path.join(d, 'new'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.write(fd, data)
    os.fsync(fd)
    os.kill(int(pid), signal.SIGKILL)


def cmd_orphan_gone(mnt, usedfile):
    """The open-unlinked file's blocks were given back at the mount: what
    is used is what was before, plus the new 100000-byte file."""
    before = int(open(usedfile).read())
    now = used_bytes(mnt)
    if os.path.lexists(os.path.join(mnt, 'orphan')):
        fail('the unlinked file has its name back')
    if now > before + (1 << 20):
        fail('%d bytes used before, %d now: the orphan\'s 8 MiB were not given back' % (before, now))


# ---- the truncate round -------------------------------------------------------

TRUNC_DATA = bytes((i * 7 + 13) % 251 for i in range(3 * PAGE))
TRUNC_TO = 5000  # inside block 1: its tail is zeroed, block 2 unmapped
TRUNC_FILES = ['F%d' % i for i in range(4)]


def cmd_trunc_setup(mnt):
    """trunc/F0..F3: three blocks of known bytes each, fsync'd."""
    d = os.path.join(mnt, 'trunc')
    os.makedirs(d, exist_ok=True)
    for f in TRUNC_FILES:
        fd = os.open(os.path.join(d, f), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(fd, TRUNC_DATA, 0)
        os.fsync(fd)
        os.close(fd)
    os.close(os.open(os.path.join(d, 'G'), os.O_RDWR | os.O_CREAT, 0o644))


def cmd_trunc_loop(mnt, logpath):
    """In a thread per file: truncate it into its second block and write
    that back whole (O_DIRECT: one request), again and again; meanwhile
    another thread fsyncs G, so commits land at any point of a truncate."""
    import threading
    log = open(logpath, 'w', buffering=1)
    count = [0] * len(TRUNC_FILES)
    done = threading.Event()
    why = []
    try:
        enter(mnt, os.path.join(mnt, 'trunc'))
        g = os.open('G', os.O_RDWR)
        fds = [(os.open(f, os.O_RDWR), os.open(f, os.O_RDWR | os.O_DIRECT)) for f in TRUNC_FILES]
    except OSError as e:
        log.write('setup failed: %s\n' % errno.errorcode.get(e.errno, e.errno))
        return
    buf = mmap.mmap(-1, 2 * PAGE)
    buf[:] = TRUNC_DATA[PAGE:]

    def loop(k):
        fd, dfd = fds[k]
        try:
            while True:
                os.ftruncate(fd, TRUNC_TO)
                os.pwrite(dfd, buf, PAGE)
                count[k] += 1
        except OSError as e:
            why.append(errno.errorcode.get(e.errno, str(e.errno)))
            done.set()

    def syncer():
        try:
            while True:
                os.fsync(g)
        except OSError:
            pass
    threading.Thread(target=syncer, daemon=True).start()
    for k in range(len(TRUNC_FILES)):
        threading.Thread(target=loop, args=(k,), daemon=True).start()
    log.write('start\n')
    done.wait()
    time.sleep(0.1)
    log.write('%d truncates, then %s\n' % (sum(count), ' '.join(sorted(set(why)))))


def cmd_trunc_check(mnt):
    """Each file is whole, or truncated; nothing in between (a truncate
    whose zeroing of the kept block's tail is durable but not its new
    size)."""
    for f in TRUNC_FILES:
        d = open(os.path.join(mnt, 'trunc', f), 'rb').read()
        if d in (TRUNC_DATA, TRUNC_DATA[:TRUNC_TO]):
            continue
        bad = [i for i in range(min(len(d), len(TRUNC_DATA))) if d[i] != TRUNC_DATA[i]]
        fail('trunc/%s is %d bytes, neither the file nor the file truncated to %d: %d bytes differ from what '
             'was fsync\'d, %d..%d (%s)' % (f, len(d), TRUNC_TO, len(bad), bad[0] if bad else -1,
                                          bad[-1] if bad else -1,
                                          'zeroes' if bad and not any(d[i] for i in bad) else 'other bytes'))


# ---- the rename round ---------------------------------------------------------

NFILES = 200


def rename_names(base, i):
    return [os.path.join(base, 's', 'a_%d' % i), os.path.join(base, 's', 'b_%d' % i),
            os.path.join(base, 't', 'c_%d' % i), os.path.join(base, 't', 'tmp_%d' % i)]


def rename_content(i):
    return (b'file %d of the rename storm\n' % i) * 20


def cmd_rename_setup(mnt):
    os.makedirs(os.path.join(mnt, 'storm', 's'))
    os.makedirs(os.path.join(mnt, 'storm', 't'))
    for i in range(NFILES):
        with open(rename_names(os.path.join(mnt, 'storm'), i)[0], 'wb') as fh:
            fh.write(rename_content(i))
    fd = os.open(rename_names(os.path.join(mnt, 'storm'), 0)[0], os.O_RDONLY)
    os.fsync(fd)  # the log is global: everything above is durable
    os.close(fd)


def cmd_rename_storm(mnt, seed, logpath):
    rnd = random.Random(int(seed))
    where = [0] * NFILES
    n = 0
    log = open(logpath, 'w', buffering=1)
    try:
        enter(mnt, os.path.join(mnt, 'storm'))
        log.write('start\n')
        while True:
            i = rnd.randrange(NFILES)
            names = rename_names('.', i)
            to = rnd.choice([k for k in range(4) if k != where[i]])
            os.rename(names[where[i]], names[to])
            where[i] = to
            n += 1
            if n % 64 == 0:
                log.write('%d renames\n' % n)
    except OSError as e:
        log.write('%d renames, then %s\n' % (n, errno.errorcode.get(e.errno, e.errno)))


def cmd_rename_check(mnt):
    allowed = set()
    for i in range(NFILES):
        names = rename_names(os.path.join(mnt, 'storm'), i)
        allowed.update(names)
        there = [p for p in names if os.path.lexists(p)]
        if len(there) != 1:
            fail('file %d is under %d names: %s' % (i, len(there), there))
            continue
        if open(there[0], 'rb').read() != rename_content(i):
            fail('%s: the content of file %d is wrong' % (there[0], i))
        if os.lstat(there[0]).st_nlink != 1:
            fail('%s: %d links' % (there[0], os.lstat(there[0]).st_nlink))
    for sub in ('s', 't'):
        for name in os.listdir(os.path.join(mnt, 'storm', sub)):
            if os.path.join(mnt, 'storm', sub, name) not in allowed:
                fail('a name nobody made: %s/%s' % (sub, name))


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'writer':
        writer(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == 'meta-worker':
        meta_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        globals()['cmd_' + cmd.replace('-', '_')](*sys.argv[2:])
    sys.exit(1 if failed else 0)
EOF

# ---- shell helpers ------------------------------------------------------------------

# The fio load of a data round: O_DIRECT 64 KiB blocks (one request each)
# and buffered 4 KiB blocks with an fsync every 8, overwritten again and
# again, each checked a little later (verify_backlog) while running.
cat >"$T/crash-load.fio" <<'EOF'
[global]
ioengine=psync
verify=crc32c
do_verify=1
verify_fatal=1
verify_dump=0
verify_backlog=16
rw=randwrite
time_based
runtime=120

[fio-direct]
direct=1
bs=64k
size=4M

[fio-buffered]
bs=4k
size=256k
fsync=8
EOF
FIO_SPECS="fio-direct.0.0:65536 fio-buffered.0.0:4096"

# Pseudo-random numbers from the seed, so a run can be repeated.
rand_state=$SEED
rand() { # rand N: RAND=0..N-1 (no subshell, or the state would not move)
	rand_state=$(((rand_state * 1103515245 + 12345) % 2147483648))
	RAND=$(((rand_state / 65536) % $1))
}

# sleep_ms MS
sleep_ms() {
	sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"
}

# wait_gone PID...: wait for processes of ours, 10 s at most each.
wait_gone() {
	for p in "$@"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$p" 2>/dev/null && { diag "process $p still there; killing it"; kill -9 "$p"; }
		wait "$p" 2>/dev/null
	done
	return 0
}

# started LOG LINE: wait (10 s at most) for a worker to say it runs on
# the mount, so the kill lands while it works.
started() {
	for _ in $(seq 1 200); do
		grep -qx "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	diag "no '$2' in $1 after 10 s: $(cat "$1" 2>/dev/null)"
	return 1
}

# started_fio FILE...: fio has laid out its files (it keeps them open).
started_fio() {
	for _ in $(seq 1 200); do
		n=0
		for f in "$@"; do [ -s "$f" ] && n=$((n + 1)); done
		[ "$n" -eq $# ] && return 0
		sleep 0.05
	done
	diag "fio did not lay out $* in 10 s"
	return 1
}

# daemon_alive: the daemon is still there to be killed (it did not die
# on its own under the load); else what it printed.
daemon_alive() {
	kill -0 "$DAEMON_PID" 2>/dev/null && return 0
	echo "the daemon died before the kill:"
	tail -n 60 "$T/daemon.err"
	return 1
}

# with_daemon_log CMD...: run CMD; when it fails, show what the daemon
# printed too.
with_daemon_log() {
	"$@" && return 0
	echo "the daemon printed:"
	tail -n 60 "$T/daemon.err"
	return 1
}

# clear_dead_mount: fs_kill could not unmount while a worker's working
# folder was inside (an unprivileged user has no umount -l); now that the
# workers are gone, fusermount3 can.
clear_dead_mount() {
	if grep -q " $MNT fuse" /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
	fi
}

# mount_point_empty: the folder under the mount point got nothing (a
# worker that outlived the mount wrote no further through the path).
mount_point_empty() {
	if grep -q " $MNT fuse" /proc/mounts; then
		echo "still mounted"
		return 1
	fi
	[ -z "$(ls -A "$MNT")" ] || { ls -lA "$MNT"; return 1; }
}

# daemon_quiet: the daemon printed no warning or error (no repair, no
# damaged copy, nothing it had to work around).
daemon_quiet() {
	if grep -Eiq 'warning|critical|error|damaged|repair' "$T/daemon.err"; then
		cat "$T/daemon.err"
		return 1
	fi
	return 0
}

# collect_layouts: user.dmio.layout of every regular file, into
# $T/layouts/ (mounted); fails if any cannot be read.
collect_layouts() {
	rm -rf "$T/layouts"
	mkdir -p "$T/layouts"
	bad=0
	find "$MNT" -type f >"$T/files"
	k=0
	while read -r f; do
		k=$((k + 1))
		if ! "$CTL" layout "$f" >"$T/layouts/$k" 2>"$T/layout.err"; then
			echo "$f: $(cat "$T/layout.err")"
			bad=1
		fi
	done <"$T/files"
	return $bad
}

mirrors_agree() {
	# shellcheck disable=SC2046
	python3 "$PY" mirrors $(ls "$T"/layouts/* 2>/dev/null)
}

# fsck_clean: fsck.dmiofs -n (read-only: replays the log in memory,
# checks superblocks, space, names, and every copy of every block against
# its checksum) finds nothing to repair.
fsck_clean() {
	"$FSCK" -n "$IMAGES"
}

# remount_after_crash NAME: fsck -n, then mount after a crash; the checks
# every round makes come after the round's own, in finish_round.
remount_after_crash() {
	if [ -x "$FSCK" ]; then
		check "$1: fsck.dmiofs -n finds nothing to repair after the crash" fsck_clean
	fi
	check "$1: it mounts again after the crash, without repair" fs_mount -o verbose || {
		diag "cannot go on without a mount"
		done_testing
	}
}

finish_round() {
	diag "$1: $(grep -o 'loaded checkpoint.*' "$T/daemon.err")"
	check "$1: every name lists and stats, every file reads to its size" python3 "$PY" walk "$MNT"
	check "$1: every file's layout is readable" collect_layouts
	check "$1: unmount after the checks is clean" fs_umount
	check "$1: the daemon reported nothing to repair or work around" daemon_quiet
	check "$1: the two mirrors of every extent are byte-identical on the images" mirrors_agree
	if [ -x "$FSCK" ]; then
		check "$1: fsck.dmiofs -n finds nothing to repair after the unmount" fsck_clean
	fi
}

# ---- the rounds ---------------------------------------------------------------------

# The kernel's writeback cache is an option (-o writeback) in newer
# daemons and the default in older ones: even rounds use it when offered.
WRITEBACK=""
if ASAN_OPTIONS=detect_leaks=0 "$DMIOFS" --help 2>&1 | grep -q -- '-o writeback '; then
	WRITEBACK=yes
fi

# The smallest metadata area (8 MiB: a 2 MiB log ring) makes the log fill
# and the committer write a checkpoint every few hundred commits, so some
# kills land in or right after one.
images 2 384M
check "mkfs.dmiofs makes a two-device file system (8 MiB metadata)" fs_mkfs --meta-size=8M

r=1
while [ "$r" -le "$ROUNDS" ]; do
	name="data round $r"
	cache=""
	if [ $((r % 2)) -eq 0 ] && [ -n "$WRITEBACK" ]; then
		cache=,writeback
		name="$name (writeback cache)"
	fi
	rand 2200
	delay_ms=$((300 + RAND))
	fs_mount -o commit=200$cache || { ok 1 "$name: dmiofs mounts"; done_testing; }
	mkdir -p "$MNT/r$r"
	python3 "$PY" writer "$MNT" "$MNT/r$r" "$T/r$r.log" "$((SEED + r))" 2>"$T/writer$r.err" &
	wpid=$!
	(cd "$T" && exec fio --directory="$MNT/r$r" --output="$T/fio$r.out" "$T/crash-load.fio") >"$T/fio$r.stderr" 2>&1 &
	fpid=$!
	python3 "$PY" meta-worker "$MNT" "$MNT/r$r/m" "$T/m$r.log" "$((SEED + 1000 * r))" 2>"$T/meta$r.err" &
	mpid=$!
	started "$T/r$r.log" start && started "$T/m$r.log" 'sync 0' &&
		started_fio "$MNT/r$r/fio-direct.0.0" "$MNT/r$r/fio-buffered.0.0"
	sleep_ms "$delay_ms"
	check "$name: the daemon ran until the kill" daemon_alive
	fs_kill
	wait_gone "$wpid" "$fpid" "$mpid"
	clear_dead_mount
	check "$name: nothing was written under the mount point while it was not mounted" mount_point_empty
	diag "$name: killed after ${delay_ms} ms; writer log: $(grep -c . "$T/r$r.log") lines, $(tail -n 1 "$T/r$r.log"); metadata worker: $(grep -c '^op' "$T/m$r.log") operations, $(tail -n 1 "$T/m$r.log")"
	check "$name: fio saw no verify error before the crash" sh -c "! grep -Ei '$VERIFY_ERRORS' '$T/fio$r.out' '$T/fio$r.stderr'"
	check "$name: the writer failed only with the mount gone (no EIO)" sh -c "! grep -q 'EIO' '$T/r$r.log' && [ ! -s '$T/writer$r.err' ] || { cat '$T/writer$r.err'; tail -n 3 '$T/r$r.log'; exit 1; }"
	check "$name: the metadata worker failed only with the mount gone" sh -c "grep -Eq '^end (ENOTCONN|ECONNABORTED)' '$T/m$r.log' && [ ! -s '$T/meta$r.err' ] || { cat '$T/meta$r.err'; tail -n 3 '$T/m$r.log'; exit 1; }"
	remount_after_crash "$name"
	k=1
	while [ "$k" -le "$r" ]; do
		check "$name: every fsync'd record of round $k is intact" python3 "$PY" records "$MNT/r$k" "$T/r$k.log"
		# shellcheck disable=SC2086
		check "$name: every block of round $k's fio files is whole" python3 "$PY" fio "$MNT/r$k" $FIO_SPECS
		check "$name: round $k's names are its metadata operations up to one at or after the last fsync" \
			python3 "$PY" meta "$MNT/r$k/m" "$T/m$k.log"
		k=$((k + 1))
	done
	finish_round "$name"
	r=$((r + 1))
done

name="fsync round"
fs_mount -o commit=60000 || { ok 1 "$name: dmiofs mounts"; done_testing; }
check "$name: a new file in a new directory is fsync'd, and the daemon killed at once" \
	with_daemon_log python3 "$PY" fsync-kill "$MNT" "$DAEMON_PID" "$T/fresh.expected" "$T/used0"
fs_kill 2>/dev/null
remount_after_crash "$name"
check "$name: the file unlinked while open is gone, its space given back" python3 "$PY" orphan-gone "$MNT" "$T/used0"
check "$name: the new directories are there" test -d "$MNT/fresh/sub"
check "$name: the new file is there with its data" cmp "$T/fresh.expected" "$MNT/fresh/sub/new"
check "$name: with its mode" sh -c "[ \$(stat -c %a '$MNT/fresh/sub/new') = 640 ]"
finish_round "$name"

name="rename round"
fs_mount -o commit=200 || { ok 1 "$name: dmiofs mounts"; done_testing; }
check "$name: 200 files made and fsync'd" with_daemon_log python3 "$PY" rename-setup "$MNT"
python3 "$PY" rename-storm "$MNT" "$SEED" "$T/storm.log" &
spid=$!
started "$T/storm.log" start
rand 1300
delay_ms=$((200 + RAND))
sleep_ms "$delay_ms"
check "$name: the daemon ran until the kill" daemon_alive
fs_kill
wait_gone "$spid"
clear_dead_mount
check "$name: nothing was renamed under the mount point while it was not mounted" mount_point_empty
diag "$name: killed after ${delay_ms} ms; $(tail -n 1 "$T/storm.log")"
remount_after_crash "$name"
check "$name: every file is under exactly one of its names, with its content" python3 "$PY" rename-check "$MNT"
finish_round "$name"

# kill_daemon_after MS: kill -9 the daemon MS ms from now (if still there),
# wait for it, clear the mount if any.
kill_daemon_after() {
	sleep_ms "$1"
	kill -9 "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=""
	if grep -q " $MNT fuse" /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
	fi
}

name="truncate round"
fs_mount || { ok 1 "$name: dmiofs mounts"; done_testing; }
check "$name: a three-block file is made and fsync'd" python3 "$PY" trunc-setup "$MNT"
fs_umount
torn=0
i=1
while [ "$i" -le "${CRASH_TRUNCATES:-12}" ]; do
	fs_mount -o commit=200 || { ok 1 "$name: dmiofs mounts"; done_testing; }
	python3 "$PY" trunc-loop "$MNT" "$T/trunc.log" 2>"$T/trunc.err" &
	tpid=$!
	started "$T/trunc.log" start
	rand 500
	sleep_ms $((200 + RAND))
	check "$name: the daemon ran until the kill" daemon_alive
	fs_kill
	wait_gone "$tpid"
	clear_dead_mount
	fs_mount || { ok 1 "$name: dmiofs mounts again"; done_testing; }
	if ! python3 "$PY" trunc-check "$MNT" >"$T/trunc-check.out" 2>&1; then
		torn=$((torn + 1))
		diag "$name: after kill $i ($(tail -n 1 "$T/trunc.log")): $(tr '\n' ' ' <"$T/trunc-check.out")"
	else
		diag "$name: kill $i: $(tail -n 1 "$T/trunc.log")"
	fi
	python3 "$PY" trunc-setup "$MNT"
	fs_umount
	i=$((i + 1))
done
ok $torn "$name: after each of $((i - 1)) kills the file is whole or truncated ($torn torn)"

name="restart round"
fs_mount -o commit=200 || { ok 1 "$name: dmiofs mounts"; done_testing; }
mkdir -p "$MNT/u"
python3 "$PY" writer "$MNT" "$MNT/u" "$T/u.log" "$SEED" 2>"$T/writer-u.err" &
wpid=$!
python3 "$PY" meta-worker "$MNT" "$MNT/u/m" "$T/mu.log" "$SEED" 2>"$T/meta-u.err" &
mpid=$!
started "$T/u.log" start && started "$T/mu.log" 'sync 0'
rand 800
sleep_ms $((400 + RAND))
check "$name: the daemon ran until the kill" daemon_alive
fs_kill
wait_gone "$wpid" "$mpid"
clear_dead_mount
check "$name: nothing was written under the mount point while it was not mounted" mount_point_empty
for i in 1 2 3 4; do
	rand 70
	"$DMIOFS" -f "$IMAGES" "$MNT" 2>"$T/daemon.err" &
	DAEMON_PID=$!
	kill_daemon_after "$RAND"
	diag "$name: a mount killed after $RAND ms"
done
for i in 1 2 3; do
	fs_mount || break
	fusermount3 -u "$MNT"
	rand 80
	kill_daemon_after "$RAND"
	diag "$name: an unmount killed after $RAND ms"
done
remount_after_crash "$name"
check "$name: every fsync'd record is intact" python3 "$PY" records "$MNT/u" "$T/u.log"
check "$name: the names are the metadata operations up to one at or after the last fsync" \
	python3 "$PY" meta "$MNT/u/m" "$T/mu.log"
finish_round "$name"

done_testing
