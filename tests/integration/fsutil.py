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
