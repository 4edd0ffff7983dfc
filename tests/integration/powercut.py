"""powercut.py - the workload and the checks of powercut.sh.

  powercut.py workload MNT JOURNAL SEED
      a seeded run on MNT: files created with contents that follow from
      their name and a version number, overwritten in place, appended to,
      renamed, deleted, in a few directories; some fsync'd, some not.
      JOURNAL (a JSON object a line, on a local disk) says when each
      operation began and, once an fsync returned, what it made durable.
  powercut.py check MNT JOURNAL TIME_NS
      MNT is a copy of the devices replayed up to a flush point that
      completed at TIME_NS (CLOCK_MONOTONIC, as time.monotonic_ns()):
      everything the journal had declared durable before then is there,
      exactly.  Prints how many names it checked.
  powercut.py final MNT JOURNAL
      MNT holds exactly the tree the workload left (after an unmount,
      everything is durable).

Why the check is exact: a name is checked at TIME_NS only when the last
record that declared its state durable was made before TIME_NS and no
operation on that name began between that record and TIME_NS.  Whatever
the workload did later began after the flush point had completed, so none
of its writes can be in the replayed prefix; whatever it did earlier
without an fsync since is not checked at all.
"""
import hashlib
import json
import os
import random
import stat
import time

from fsutil import fail, run_case

OPS = 260
MAX_FILES = 36
DIRS = ["a", "b"]
LATE_DIR = "c"          # made halfway through
SYNC_CHANCE = 0.5
# A stretch of operations with no fsync, each after a short pause, so the
# committer writes commits of its own (lazy: no flush) one after another.
QUIET_FROM, QUIET_OPS, QUIET_PAUSE = 150, 40, 0.02


def content(fid, version, n):
    """n bytes that follow from a file's name at creation and a version."""
    return hashlib.shake_256(("%s/%d" % (fid, version)).encode()).digest(n)


def digest(data):
    return hashlib.sha256(data).hexdigest()


class File:
    def __init__(self, fid, data):
        self.fid, self.version, self.data = fid, 1, bytearray(data)


class Workload:
    def __init__(self, mnt, journal, seed):
        self.mnt, self.rnd = mnt, random.Random(seed)
        self.journal = open(journal, "w", buffering=1)
        self.files = {}  # path -> File
        self.dirs = []
        self.made = 0
        self.quiet = False

    # ---- the journal --------------------------------------------------------

    def note(self, record):
        self.journal.write(json.dumps(record, sort_keys=True) + "\n")

    def began(self, *paths):
        """Before an operation: it may change these names from now on."""
        self.note({"t": time.monotonic_ns(), "mut": list(paths)})

    def durable(self, path):
        """After the fsyncs returned: the name's state is durable."""
        f = self.files.get(path)
        if f is not None:
            state = {"size": len(f.data), "sha256": digest(f.data), "version": f.version}
        elif path in self.dirs:
            state = "dir"
        else:
            state = None  # absent
        self.note({"t": time.monotonic_ns(), "durable": path, "state": state})

    # ---- the file system --------------------------------------------------------

    def full(self, path):
        return os.path.join(self.mnt, path)

    def fsync_dir(self, path):
        fd = os.open(self.full(os.path.dirname(path)), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_file(self, path, flags, chunks, sync):
        """Write (offset, bytes) chunks through one descriptor; fsync it
        (and its directory) when asked, before closing."""
        fd = os.open(self.full(path), os.O_WRONLY | flags, 0o644)
        try:
            for off, data in chunks:
                os.pwrite(fd, data, off)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if sync:
            self.fsync_dir(path)
            self.durable(path)

    def sync_chance(self):
        return self.rnd.random() < SYNC_CHANCE and not self.quiet

    # ---- operations ------------------------------------------------------------------

    def mkdir(self, name):
        self.began(name)
        os.mkdir(self.full(name))
        self.dirs.append(name)
        self.fsync_dir(name)
        self.durable(name)

    def new_path(self):
        self.made += 1
        where = self.rnd.choice([""] + self.dirs)
        return os.path.join(where, "f%03d" % self.made)

    def create(self):
        path = self.new_path()
        size = self.rnd.choice([0, 1, 4095, 4096, 8192, self.rnd.randint(1, 120000)])
        f = File(path, b"")
        f.data = bytearray(content(f.fid, 1, size))
        self.began(path)
        self.files[path] = f
        self.write_file(path, os.O_CREAT | os.O_EXCL, [(0, bytes(f.data))], self.sync_chance())

    def overwrite(self, path):
        """Bytes replaced in place (and past the end now and then)."""
        f = self.files[path]
        off = self.rnd.randrange(0, len(f.data) + 1)
        f.version += 1
        data = content(f.fid, f.version, self.rnd.randint(1, 20000))
        self.began(path)
        end = off + len(data)
        if end > len(f.data):
            f.data.extend(bytes(end - len(f.data)))
        f.data[off:end] = data
        self.write_file(path, 0, [(off, data)], self.sync_chance())

    def append(self, path):
        f = self.files[path]
        f.version += 1
        data = content(f.fid, f.version, self.rnd.randint(1, 40000))
        self.began(path)
        off = len(f.data)
        f.data.extend(data)
        self.write_file(path, 0, [(off, data)], self.sync_chance())

    def rename(self, path):
        """To a new name, or over another file now and then."""
        others = [p for p in self.files if p != path]
        to = self.rnd.choice(others) if others and self.rnd.random() < 0.2 else self.new_path()
        self.began(path, to)
        os.rename(self.full(path), self.full(to))
        self.files[to] = self.files.pop(path)
        if self.sync_chance():
            fd = os.open(self.full(to), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.fsync_dir(path)
            self.fsync_dir(to)
            self.durable(to)
            self.durable(path)

    def delete(self, path):
        self.began(path)
        os.unlink(self.full(path))
        del self.files[path]
        if self.sync_chance():
            self.fsync_dir(path)
            self.durable(path)

    def step(self, i):
        if i == OPS // 2:
            self.mkdir(LATE_DIR)
        self.quiet = QUIET_FROM <= i < QUIET_FROM + QUIET_OPS
        if self.quiet:
            time.sleep(QUIET_PAUSE)
        r = self.rnd.random()
        if not self.files or (r < 0.3 and len(self.files) < MAX_FILES):
            self.create()
            return
        path = self.rnd.choice(sorted(self.files))
        if r < 0.5:
            self.overwrite(path)
        elif r < 0.7:
            self.append(path)
        elif r < 0.82:
            self.rename(path)
        elif r < 0.92:
            self.delete(path)
        else:
            # Some time without fsyncs, so the commit timer commits
            # whatever is pending in between.
            time.sleep(self.rnd.choice([0.05, 0.1, 0.25]))

    def run(self):
        for d in DIRS:
            self.mkdir(d)
        for i in range(OPS):
            self.step(i)
        self.note({"final": {p: {"size": len(f.data), "sha256": digest(f.data)} for p, f in self.files.items()},
                   "dirs": self.dirs})


# ---- checks ----------------------------------------------------------------------------


def read_journal(path):
    with open(path) as j:
        return [json.loads(line) for line in j]


def promised(records, time_ns):
    """{path: state} that must hold at a flush point that completed at
    time_ns: the last durable state declared before it, of every name no
    operation touched after that declaration and before time_ns."""
    last, touched = {}, set()
    for rec in records:
        if "t" not in rec or rec["t"] >= time_ns:
            break  # in journal order, times only grow
        if "durable" in rec:
            last[rec["durable"]] = rec["state"]
            touched.discard(rec["durable"])
        else:
            touched.update(p for p in rec["mut"] if p in last)
    return {p: s for p, s in last.items() if p not in touched}


def state_on_disk(full):
    """What a name holds: None, "dir", or {"size", "sha256"}."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    with open(full, "rb") as f:
        data = f.read()
    if len(data) != st.st_size:
        fail("%s: stat says %d bytes, read gives %d" % (full, st.st_size, len(data)))
    return {"size": len(data), "sha256": digest(data)}


def same_state(want, got):
    if want is None or want == "dir" or got is None or got == "dir":
        return want == got
    return want["size"] == got["size"] and want["sha256"] == got["sha256"]


def describe(state):
    if state is None:
        return "absent"
    if state == "dir":
        return "a directory"
    return "%d bytes, sha256 %s...%s" % (state["size"], state["sha256"][:12],
                                         " (version %d)" % state["version"] if "version" in state else "")


def t_check(mnt, journal, time_ns):
    promises = promised(read_journal(journal), int(time_ns))
    for path, want in sorted(promises.items()):
        got = state_on_disk(os.path.join(mnt, path))
        if not same_state(want, got):
            fail("%s: fsync'd as %s, found %s" % (path, describe(want), describe(got)))
    print("checked %d names" % len(promises))


def t_final(mnt, journal):
    final = read_journal(journal)[-1]
    want = {p: s for p, s in final["final"].items()}
    want.update({d: "dir" for d in final["dirs"]})
    got = {}
    for root, dirs, files in os.walk(mnt):
        for name in dirs + files:
            full = os.path.join(root, name)
            got[os.path.relpath(full, mnt)] = state_on_disk(full)
    for path in sorted(set(want) | set(got)):
        if not same_state(want.get(path), got.get(path)):
            fail("%s: the workload left %s, found %s" % (path, describe(want.get(path)), describe(got.get(path))))
    print("%d names as the workload left them" % len(want))


def t_workload(mnt, journal, seed):
    Workload(mnt, journal, int(seed)).run()


if __name__ == "__main__":
    run_case(globals())
