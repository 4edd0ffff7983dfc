"""fsutil.py - Python helpers shared by the integration tests' programs
(lib.sh puts this folder on PYTHONPATH)."""
import errno
import os


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
