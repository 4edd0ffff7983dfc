"""fsutil.py - Python helpers shared by the integration tests' programs
(lib.sh puts this folder on PYTHONPATH)."""
import errno
import os
import sys
import traceback

# What went wrong in this run, one line each (shared: append, never rebind).
failures = []


def fail(msg):
    failures.append(msg)


def run_case(cases):
    """Run the case that argv[1] names (t_NAME among cases) with the other
    arguments; print every failure and exit 1 if there was any."""
    try:
        cases["t_" + sys.argv[1]](*sys.argv[2:])
    except Exception as e:  # an unexpected failure is a failure, with its cause
        fail("unexpected: " + "".join(traceback.format_exception(e)).strip())
    for f in failures:
        print(f)
    sys.exit(1 if failures else 0)


def segments(path):
    """The data segments of a file by SEEK_DATA/SEEK_HOLE: [(start, end)]."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size, off, segs = os.fstat(fd).st_size, 0, []
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            h = os.lseek(fd, d, os.SEEK_HOLE)
            segs.append((d, h))
            off = h
        return segs
    finally:
        os.close(fd)


def compare_copies(pairs):
    """Each line of the file pairs, "EXTENT PATH0 SECTOR0 PATH1 SECTOR1
    COUNT", names two copies of an extent on the images: both must hold
    the same COUNT sectors.  Prints a line per difference; True when none."""
    same = True
    files = {}

    def read(path, sector, count):
        if path not in files:
            files[path] = open(path, "rb")
        f = files[path]
        f.seek(sector * 512)
        return f.read(count * 512)

    with open(pairs) as lines:
        for line in lines:
            e, p0, s0, p1, s1, n = line.split()
            a = read(p0, int(s0), int(n))
            b = read(p1, int(s1), int(n))
            if len(a) != int(n) * 512 or a != b:
                print("extent %s: %s sector %s and %s sector %s (%s sectors) differ" % (e, p0, s0, p1, s1, n))
                same = False
    for f in files.values():
        f.close()
    return same


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "compare-copies":
    sys.exit(0 if compare_copies(sys.argv[2]) else 1)
