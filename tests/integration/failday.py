"""failday.py - the files, waits and checks of degraded.sh and faults.sh
(the day a disk fails).  One case per command: failday.py CASE ARGS...

Files are written from a seed and recorded in a manifest (JSON, on the
local disk): for each name its size and the writes that made it, so the
bytes every file must hold follow from the manifest alone.  The mount's
status is read with dmiofs-ctl (the CTL variable names the build's), as a
user would.

  write MNT MANIFEST SEED NAME:SIZE...   new files (NAME may hold a folder)
  patch MNT MANIFEST SEED NAME OFF LEN   overwrite part of a file
  verify MNT MANIFEST [exact]            every file holds what the manifest
                                         says; exact: and no other file
  wait MNT TIMEOUT LOG COND ARGS...      poll status until COND (below)
  copied LOG TASK                        most bytes a task copied, seen by wait
  data-start MNT DEV                     lowest byte of DEV any file uses
  garbage FILE OFFSET LENGTH SEED        seeded random bytes over FILE
  lacking MNT OUT GONE...                which files lack a copy without GONE
  refusal ERRFILE OUT                    the refusal names exactly those
  scrub FILE found|clean                 a scrub's JSON result
  errors FILE DEV KIND... [exact]        DEV counted KINDs, the others none
  devices MNT PATH=STATE...              the devices, in index order
  leaving MNT DEV REASON                 DEV is leaving for REASON, or gone
  scrub-resumed MNT MIN_CHECKED          a scrub runs (or finished) with
                                         at least MIN_CHECKED bytes checked
  agree MNT                              the xattrs say what --json says
  faults FILE DEV KIND...                inject --list --json: these, hit

Conditions of wait: healthy [NDEV] (healthy, idle, every device here and
healthy), task NAME MIN_DONE (the task under way, at least MIN_DONE bytes
done, not finished), scrub-running MIN_CHECKED, scrub-done, failed DEV.
"""
import hashlib
import json
import os
import random
import re
import subprocess
import time

from fsutil import fail, run_case

KINDS = ["read", "write", "flush", "checksum"]


def ctl(*args):
    """dmiofs-ctl ARGS: (exit status, stdout, stderr)."""
    p = subprocess.run([os.environ["CTL"]] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def status(mnt):
    rc, out, err = ctl("status", "--json", mnt)
    if rc not in (0, 2, 3):  # healthy, degraded, I/O errors counted
        raise RuntimeError("dmiofs-ctl status --json %s: exit %d: %s" % (mnt, rc, err.strip()))
    return json.loads(out)


def load_json(path):
    with open(path) as f:
        return json.load(f)


# ---- files from a manifest ---------------------------------------------------------


def piece(tag, n):
    return hashlib.shake_256(tag.encode()).digest(n)


def load_manifest(path):
    return load_json(path) if os.path.exists(path) else {}


def save_manifest(path, m):
    with open(path + ".new", "w") as f:
        json.dump(m, f, sort_keys=True)
    os.rename(path + ".new", path)


def expected(entry):
    data = bytearray(entry["size"])
    for off, n, tag in entry["writes"]:
        data[off:off + n] = piece(tag, n)
    return bytes(data)


def put(mnt, name, off, data, create):
    path = os.path.join(mnt, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | (os.O_CREAT | os.O_EXCL if create else 0), 0o644)
    try:
        os.pwrite(fd, data, off)
        os.fsync(fd)
    finally:
        os.close(fd)


def t_write(mnt, manifest, seed, *specs):
    m = load_manifest(manifest)
    for spec in specs:
        name, size = spec.rsplit(":", 1)
        tag = "%s/%s/%d" % (seed, name, len(m))
        m[name] = {"size": int(size), "writes": [[0, int(size), tag]]}
        put(mnt, name, 0, piece(tag, int(size)), True)
    save_manifest(manifest, m)


def t_patch(mnt, manifest, seed, name, off, n):
    m = load_manifest(manifest)
    e = m[name]
    off, n = int(off), int(n)
    tag = "%s/%s/patch%d" % (seed, name, len(e["writes"]))
    e["writes"].append([off, n, tag])
    e["size"] = max(e["size"], off + n)
    put(mnt, name, off, piece(tag, n), False)
    save_manifest(manifest, m)


def files_under(mnt):
    out = set()
    for root, dirs, files in os.walk(mnt):
        for f in files:
            out.add(os.path.relpath(os.path.join(root, f), mnt))
    return out


def t_verify(mnt, manifest, mode="subset"):
    m = load_manifest(manifest)
    for name, e in sorted(m.items()):
        path = os.path.join(mnt, name)
        try:
            with open(path, "rb") as f:
                got = f.read()
        except OSError as err:
            fail("%s: %s" % (name, err))
            continue
        want = expected(e)
        if got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
            fail("%s: %d bytes, sha1 %s; want %d bytes, sha1 %s (first difference at byte %d)"
                 % (name, len(got), hashlib.sha1(got).hexdigest(), len(want), hashlib.sha1(want).hexdigest(), first))
    if mode == "exact":
        extra = files_under(mnt) - set(m)
        if extra:
            fail("files that should not be there: %s" % ", ".join(sorted(extra)))
    print("# %d file(s) checked" % len(m))


# ---- waiting on the status -------------------------------------------------------


def reached(s, cond, args):
    task, scrub = s["task"], s["scrub"]
    if cond == "healthy":
        # every device here and healthy ("errors": some were counted on
        # the way, which a reset of the counters clears)
        return (s["status"] in ("healthy", "errors") and task["name"] == "idle" and not s["missing"]
                and all(d["state"] == "healthy" and d["present"] for d in s["devices"])
                and (not args or s["device_count"] == int(args[0])))
    if cond == "task":
        return task["name"] == args[0] and int(args[1]) <= task["done"] < task["total"]
    if cond == "scrub-running":
        return scrub["state"] == "running" and int(args[0]) <= scrub["checked"] < scrub["total"]
    if cond == "scrub-done":
        return scrub["state"] == "idle" and scrub["last_result"] == "finished"
    if cond == "failed":
        return any(d["index"] == int(args[0]) and d["state"] == "failed" for d in s["devices"])
    raise ValueError("no such condition: " + cond)


def t_wait(mnt, timeout, log, cond, *args):
    """Poll the status every 50 ms until cond holds (TIMEOUT seconds at
    most); LOG gets what was seen on the way: the tasks, the most bytes
    each copied, the states of each device."""
    seen = {"tasks": [], "max_copied": {}, "states": {}, "polls": 0}
    start = time.monotonic()
    s = None
    while True:
        s = status(mnt)
        seen["polls"] += 1
        t = s["task"]
        if t["name"] != "idle":
            if t["name"] not in seen["tasks"]:
                seen["tasks"].append(t["name"])
            seen["max_copied"][t["name"]] = max(seen["max_copied"].get(t["name"], 0), t["copied"])
        for d in s["devices"]:
            states = seen["states"].setdefault(str(d["index"]), [])
            if not states or states[-1] != d["state"]:
                states.append(d["state"])
        if reached(s, cond, args):
            break
        if time.monotonic() - start > float(timeout):
            fail("%s %s not reached in %s s; the status: %s" % (cond, " ".join(args), timeout, json.dumps(s)))
            break
        time.sleep(0.05)
    seen["seconds"] = round(time.monotonic() - start, 2)
    seen["last"] = s
    with open(log, "w") as f:
        json.dump(seen, f)
    print("# %s after %.1f s: tasks %s, copied %s, states %s" % (cond, seen["seconds"], seen["tasks"],
                                                               seen["max_copied"], seen["states"]))


def t_copied(log, task):
    print(load_json(log)["max_copied"].get(task, 0))


# ---- where the data is -------------------------------------------------------------


def layout(path):
    """The regions of a file: [(extent, copy, device, sector, count)]."""
    rc, out, err = ctl("layout", path)
    if rc:
        raise RuntimeError("dmiofs-ctl layout %s: %s" % (path, err.strip()))
    regions = []
    for line in out.splitlines():
        if line.startswith("region "):
            kv = dict(w.split("=", 1) for w in line.split()[1:])
            regions.append((int(kv["extent"]), int(kv["copy"]), int(kv["device"]), int(kv["sector"]),
                            int(kv["count"])))
    return regions


def t_data_start(mnt, dev):
    sectors = [r[3] for name in files_under(mnt) for r in layout(os.path.join(mnt, name)) if r[2] == int(dev)]
    if not sectors:
        raise RuntimeError("no file has a copy on device %s" % dev)
    print(min(sectors) * 512)


def t_garbage(path, offset, length, seed):
    data = random.Random(int(seed)).randbytes(int(length))
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, int(offset))
        os.fsync(fd)
    finally:
        os.close(fd)


def t_lacking(mnt, out, *gone):
    """Which files would lack a copy of some extent without the devices
    GONE (from their layouts), and which would not."""
    gone = {int(g) for g in gone}
    lacking, whole = [], []
    for name in sorted(files_under(mnt)):
        extents = {}
        for e, _, dev, _, _ in layout(os.path.join(mnt, name)):
            extents.setdefault(e, set()).add(dev)
        (lacking if any(devs <= gone for devs in extents.values()) else whole).append("/" + name)
    if not lacking or not whole:
        fail("the test wants files of both kinds: lacking %s, whole %s" % (lacking, whole))
    with open(out, "w") as f:
        json.dump({"lacking": lacking, "whole": whole}, f)
    print("# without devices %s: lacking %s; whole %s" % (sorted(gone), lacking, whole))


def t_refusal(errfile, out):
    msg = open(errfile).read()
    want = load_json(out)
    m = re.search(r"lack a copy of (\d+) file", msg)
    if not m:
        fail("the refusal does not say how many files lack a copy: %s" % msg)
        return
    if int(m.group(1)) != len(want["lacking"]):
        fail("the refusal counts %s file(s), %d lack a copy" % (m.group(1), len(want["lacking"])))
    named = set(re.findall(r" (/[^ ;]+);", msg.split("Files affected:", 1)[-1]))
    if named != set(want["lacking"]):
        fail("the refusal names %s; the files lacking a copy are %s" % (sorted(named), want["lacking"]))


# ---- results -------------------------------------------------------------------------


def t_scrub(path, expect):
    s = load_json(path)
    if s["state"] != "idle" or s["last_result"] != "finished" or s["checked"] != s["total"] or not s["total"]:
        fail("the scrub did not finish: %s" % s)
    if expect == "found" and not (s["found"] > 0 and s["fixed"] == s["found"] and s["unfixed"] == 0):
        fail("want found > 0, fixed == found, unfixed == 0: %s" % s)
    if expect == "clean" and (s["found"] or s["fixed"] or s["unfixed"]):
        fail("want nothing found: %s" % s)
    print("# scrub: checked %d of %d bytes, found %d, fixed %d, unfixed %d"
          % (s["checked"], s["total"], s["found"], s["fixed"], s["unfixed"]))


def t_errors(path, dev, *kinds):
    """DEV counted every KIND, the other devices no error at all; with
    'exact', DEV no error of another kind either."""
    exact = "exact" in kinds
    kinds = [k for k in kinds if k != "exact"]
    for d in load_json(path)["devices"]:
        for k in KINDS:
            n = d[k + "_errors"]
            if d["index"] == int(dev) and k in kinds and not n:
                fail("device %d counted no %s error" % (d["index"], k))
            elif (d["index"] != int(dev) or (exact and k not in kinds)) and n:
                fail("device %d counted %d %s error(s)" % (d["index"], n, k))
        print("# device %d: %s" % (d["index"], " ".join("%s=%d" % (k, d[k + "_errors"]) for k in KINDS)))


def t_devices(mnt, *specs):
    s = status(mnt)
    got = ["%s=%s" % (d["path"], d["state"]) for d in s["devices"]]
    if got != list(specs):
        fail("devices %s; want %s" % (got, list(specs)))
    if s["device_count"] != len(specs):
        fail("device_count %d; want %d" % (s["device_count"], len(specs)))


def t_leaving(mnt, dev, reason):
    s = status(mnt)
    d = [d for d in s["devices"] if d["index"] == int(dev)]
    if d and d[0]["leaving"] != reason:
        fail("device %s is not leaving (%s): %s" % (dev, reason, json.dumps(s)))


def t_scrub_resumed(mnt, min_checked):
    sc = status(mnt)["scrub"]
    if not (sc["state"] == "running" or (sc["state"] == "idle" and sc["last_result"] == "finished")):
        fail("no scrub runs or finished: %s" % sc)
    elif sc["checked"] < int(min_checked):
        fail("the scrub stands at %d bytes checked, not at least %s: %s" % (sc["checked"], min_checked, sc))
    print("# the scrub: %s" % sc)


def xattr_lines(mnt, name):
    return os.getxattr(mnt, name).decode().splitlines()


def text_value(v):
    """A JSON value as the xattr text writes it."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return ""
    if isinstance(v, float):
        return "%.0f" % v
    return str(v)


def t_agree(mnt):
    """user.dmio.status and user.dmio.devices against status --json: the
    same status, read while nothing changes (read again when it did)."""
    for _ in range(20):
        before = (xattr_lines(mnt, "user.dmio.status"), xattr_lines(mnt, "user.dmio.devices"))
        s = status(mnt)
        after = (xattr_lines(mnt, "user.dmio.status"), xattr_lines(mnt, "user.dmio.devices"))
        if before == after:
            break
        time.sleep(0.1)
    else:
        fail("the status kept changing")
        return
    st = dict(line.split("=", 1) for line in before[0])
    pairs = [("status", s["status"]), ("uuid", s["uuid"]), ("label", s["label"]), ("copies", s["copies"]),
             ("devices", s["device_count"]), ("healthy_devices", s["healthy_devices"]),
             ("capacity", s["capacity"]), ("used", s["used"]), ("free", s["free"]), ("files", s["files"]),
             ("generation", s["generation"]), ("read_only", s["read_only"]), ("missing", ",".join(s["missing"])),
             ("task", s["task"]["name"]), ("scrub", s["scrub"]["state"]),
             ("scrub_last_result", s["scrub"]["last_result"]), ("scrub_found", s["scrub"]["found"])]
    for key, want in pairs:
        if st.get(key) != text_value(want):
            fail("user.dmio.status %s=%s, --json says %s" % (key, st.get(key), want))
    lines = before[1]
    if len(lines) != len(s["devices"]):
        fail("user.dmio.devices has %d lines, --json %d devices" % (len(lines), len(s["devices"])))
    for line, d in zip(lines, s["devices"]):
        kv = dict(w.split("=", 1) for w in line.split(" ") if "=" in w)
        for key in ["state", "present", "size", "used", "stale", "read_errors", "write_errors", "flush_errors",
                    "checksum_errors", "repaired", "leaving", "uuid", "path"]:
            if kv.get(key) != text_value(d[key]):
                fail("user.dmio.devices device=%s %s=%s, --json says %s" % (kv.get("device"), key, kv.get(key),
                                                                              d[key]))
        if kv.get("device") != str(d["index"]):
            fail("user.dmio.devices line %r is not device %d" % (line, d["index"]))
    print("# %d status keys and %d device lines agree" % (len(pairs), len(lines)))


def t_faults(path, dev, *kinds):
    faults = load_json(path)["faults"]
    got = [f["fault"].split()[0] for f in faults]
    if sorted(got) != sorted(kinds):
        fail("faults listed: %s; want %s" % (got, list(kinds)))
    for f in faults:
        if f["device"] != int(dev) or f["hits"] <= 0:
            fail("want device %s with hits > 0: %s" % (dev, f))
    print("# " + "; ".join("%s: %d hit(s)" % (f["fault"], f["hits"]) for f in faults))


if __name__ == "__main__":
    run_case({"t_" + k[2:].replace("_", "-"): v for k, v in globals().items() if k.startswith("t_")})
