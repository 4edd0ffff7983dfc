#!/usr/bin/python3
"""report.py - the report of a bench/run: results.json, results.md and
ratios.png (through gnuplot) in OUT, from what bench/run left in OUT/raw:
info.env (the machine and the parameters), one NN-JOB-TARGET.env per run
(what ran, the daemon's CPU ticks and peak RSS) and the fio or metabench
JSON outputs it names.

    /usr/bin/python3 bench/report.py OUT

Python 3 standard library only.  Rerun it on an OUT folder to redo the
report (for instance after changing this file)."""

import glob
import json
import math
import os
import subprocess
import sys

MiB = 1 << 20
GiB = 1 << 30

TARGETS = ["raw", "raw2", "dmiofs", "ext4", "passthrough"]
TARGET_NAMES = {
    "raw": "raw image",
    "raw2": "raw images x2 (aggregate)",
    "dmiofs": "**dmiofs**",
    "ext4": "ext4 on loop",
    "passthrough": "FUSE passthrough",
}
# ratios drawn and summarised: dmiofs / these
REFERENCES = ["raw", "ext4", "passthrough"]

KINDS = {
    "seqwrite": ("sequential write, 1 MiB, QD16", "MiB/s"),
    "seqread": ("sequential read, 1 MiB, QD16", "MiB/s"),
    "randread": ("random read, 4 KiB, QD32", "IOPS"),
    "randwrite": ("random write, 4 KiB, QD32", "IOPS"),
    "randrw": ("random 70 % read / 30 % write, 4 KiB, QD32", "IOPS"),
    "fsync": ("4 KiB write + fdatasync each, QD1 (psync)", "IOPS"),
    "meta": ("metadata: create, stat, rename, unlink", "ops/s"),
}
PHASES = ["create", "stat", "rename", "unlink"]


def read_env(path):
    d = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                d[k] = v
    return d


def load_json(path):
    with open(path) as f:
        text = f.read()
    # fio may print notes before its JSON
    return json.loads(text[text.index("{"):])


def pct(stats, p):
    """The p-th percentile (ns) of a fio latency block, or None."""
    if not stats or not stats.get("N"):
        return None
    table = stats.get("percentile") or {}
    v = table.get("%.6f" % p)
    return float(v) if v is not None else None


def fio_part(path):
    """The figures of one fio output (all its jobs or groups together)."""
    j = load_json(path)
    jobs = j["jobs"]
    out = {
        "read_bw": sum(x["read"]["bw_bytes"] for x in jobs),
        "write_bw": sum(x["write"]["bw_bytes"] for x in jobs),
        "read_iops": sum(x["read"]["iops"] for x in jobs),
        "write_iops": sum(x["write"]["iops"] for x in jobs),
        "read_bytes": sum(x["read"]["io_bytes"] for x in jobs),
        "write_bytes": sum(x["write"]["io_bytes"] for x in jobs),
        "runtime_ms": max(x.get("job_runtime", 0) for x in jobs),
        "errors": sum(x.get("error", 0) for x in jobs),
    }
    for d in ("read", "write"):
        for p in (50, 99):
            vals = [pct(x[d].get("clat_ns"), p) for x in jobs if x[d]["total_ios"]]
            vals = [v for v in vals if v is not None]
            out["%s_clat_p%d_us" % (d, p)] = max(vals) / 1000 if vals else None
    for p in (50, 99):
        vals = [pct(x.get("sync", {}).get("lat_ns"), p) for x in jobs]
        vals = [v for v in vals if v is not None]
        out["sync_lat_p%d_us" % p] = max(vals) / 1000 if vals else None
    return out


def combine(parts, mode):
    """One figure set from the fio outputs of one run.  both-half: two
    processes writing both images at once, rates and bytes halved (the
    logical rate of a mirror); both-sum: two images read at once,
    aggregate; one: a single process.  Latencies: the larger of the two."""
    r = {}
    div = 2.0 if mode == "both-half" else 1.0
    for k in ("read_bw", "write_bw", "read_iops", "write_iops", "read_bytes", "write_bytes"):
        r[k] = sum(p[k] for p in parts) / div
    r["errors"] = sum(p["errors"] for p in parts)
    r["runtime_ms"] = max(p["runtime_ms"] for p in parts)
    for k in parts[0]:
        if k.endswith("_us"):
            vals = [p[k] for p in parts if p[k] is not None]
            r[k] = max(vals) if vals else None
    return r


def daemon_figures(env, info, gib=None, ops=None):
    r = {}
    ticks = env.get("cpu_ticks", "")
    if ticks != "":
        secs = int(ticks) / int(info.get("clk_tck", "100"))
        r["daemon_cpu_s"] = secs
        if gib:
            r["daemon_cpu_s_per_gib"] = secs / gib
        if ops:
            r["daemon_cpu_us_per_op"] = secs / ops * 1e6
    if env.get("rss_kib", "") != "":
        r["daemon_peak_rss_kib"] = int(env["rss_kib"])
    return r


def fio_result(env, raw, info, kind, unit):
    parts = [fio_part(os.path.join(raw, name)) for name in env["outputs"].split()]
    r = combine(parts, env["mode"])
    if kind == "fsync":
        rate = r["write_iops"]
    elif unit == "MiB/s":
        rate = (r["read_bw"] + r["write_bw"]) / MiB
    else:
        rate = r["read_iops"] + r["write_iops"]
    r["rate"] = rate
    r["mode"] = env["mode"]
    r["outputs"] = env["outputs"].split()
    gib = (r["read_bytes"] + r["write_bytes"]) / GiB
    r["gib_moved"] = gib
    r.update(daemon_figures(env, info, gib=gib))
    return r


def meta_result(env, raw, info):
    m = load_json(os.path.join(raw, env["outputs"]))
    n = m["files"]
    secs = sum(m["phases"][p]["secs"] for p in PHASES)
    r = {"files": n, "threads": m["threads"], "bytes_per_file": m["bytes"]}
    for p in PHASES:
        r[p + "_ops_per_s"] = m["phases"][p]["ops_per_s"]
        r[p + "_secs"] = m["phases"][p]["secs"]
    r["rate"] = len(PHASES) * n / secs if secs > 0 else 0.0
    r["outputs"] = [env["outputs"]]
    r.update(daemon_figures(env, info, ops=len(PHASES) * n))
    return r


def fmt_num(v, digits=None):
    if v is None:
        return "–"
    if isinstance(v, float) and math.isnan(v):
        return "–"
    if digits is not None:
        return "%.*f" % (digits, v)
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_ratio(v):
    return "–" if v is None else "%.3f" % v


def fmt_rss(kib):
    return "–" if kib is None else "%.0f MiB" % (kib / 1024) if kib >= 10240 else "%.1f MiB" % (kib / 1024)


def lat_cells(kind, r):
    """p50 and p99 cells (µs) for a job kind."""
    cells = []
    for p in (50, 99):
        rd, wr, sy = (r.get("read_clat_p%d_us" % p), r.get("write_clat_p%d_us" % p),
                      r.get("sync_lat_p%d_us" % p))
        if kind == "randrw":
            cells.append("r %s / w %s" % (fmt_num(rd), fmt_num(wr)))
        elif kind == "fsync":
            cells.append("w %s + sync %s" % (fmt_num(wr), fmt_num(sy)))
        elif kind in ("seqread", "randread"):
            cells.append(fmt_num(rd))
        else:
            cells.append(fmt_num(wr))
    return cells


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py OUT (the folder bench/run wrote)")
    out = os.path.abspath(sys.argv[1])
    raw = os.path.join(out, "raw")
    info = read_env(os.path.join(raw, "info.env"))

    jobs = {}   # name -> {"kind", "targets": {target: result}}
    order = []
    for path in sorted(glob.glob(os.path.join(raw, "[0-9]*.env"))):
        env = read_env(path)
        name = env["job"]
        kind = name.split("-")[0]
        title, unit = KINDS[kind]
        if name not in jobs:
            jobs[name] = {"name": name, "kind": kind, "title": title, "unit": unit,
                          "targets": {}, "order": []}
            order.append(name)
        job = jobs[name]
        if env["kind"] == "fio":
            job["numjobs"] = int(env["numjobs"])
            job["jobfile"] = "bench/fio/" + env["jobfile"]
            job["targets"][env["target"]] = fio_result(env, raw, info, kind, unit)
        else:
            job["threads"] = int(env["threads"])
            job["targets"][env["target"]] = meta_result(env, raw, info)
        job["order"].append(env["target"])

    for name in order:
        job = jobs[name]
        d = job["targets"].get("dmiofs")
        job["ratios"] = {}
        for t, r in job["targets"].items():
            if d and r["rate"] > 0 and t != "dmiofs":
                job["ratios"][t] = d["rate"] / r["rate"]
        if job["kind"] == "meta" and d:
            job["phase_ratios"] = {
                t: {p: (d[p + "_ops_per_s"] / r[p + "_ops_per_s"] if r[p + "_ops_per_s"] else None)
                    for p in PHASES}
                for t, r in job["targets"].items() if t != "dmiofs"}

    results = {"info": info, "jobs": [jobs[n] for n in order]}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")

    md = render_md(info, [jobs[n] for n in order])
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)

    chart(out, raw, [jobs[n] for n in order])


def job_heading(job):
    if job["kind"] == "meta":
        return "%s: %s, %d thread%s" % (job["name"], job["title"], job["threads"],
                                         "" if job["threads"] == 1 else "s")
    return "%s: %s, %d job%s" % (job["name"], job["title"], job["numjobs"],
                                  "" if job["numjobs"] == 1 else "s")


def render_md(info, jobs):
    L = []
    mem = int(info.get("mem_kib", "0")) / (1 << 20)
    img = int(info["image_bytes"]) // MiB
    fil = int(info["file_bytes"]) // MiB
    quick = info.get("quick") == "1"
    L.append("# dmiofs benchmark (bench/run%s)" % (" --quick" if quick else ""))
    L.append("")
    L.append("- date: %s; run took %s s" % (info.get("date", "?"), info.get("seconds", "?")))
    L.append("- machine: kernel %s, %s CPUs (%s), %.1f GiB memory; load average %s at the start, %s at the end"
             % (info.get("kernel"), info.get("nproc"), info.get("cpu", "?"), mem,
                info.get("loadavg_start", "?"), info.get("loadavg_end", "?")))
    L.append("- image folder: %s, %s" % (info.get("image_dir"), info.get("image_fs")))
    L.append("- command: `%s` (in %s)" % (info.get("command"), info.get("cwd")))
    L.append("- dmiofs: %s, binaries from %s (%s)%s; %s"
             % (info.get("dmiofs_version", "?"), info.get("binaries_from"), info.get("dmiofs"),
                ", mounted with -o " + info["dmiofs_options"] if info.get("dmiofs_options") else "",
                info.get("fio_version")))
    L.append("- images of %d MiB (5: two raw, two dmiofs, one ext4), each allocated and written once; "
             "every file system target works on one file of %d MiB laid down once, and raw on the "
             "same range of the image; %s s per fio run; %s files of 100 bytes for the metadata job%s"
             % (img, fil, info.get("runtime"), info.get("files"),
                " (--quick: fewer than the default 100000)" if quick and info.get("files") != "100000" else ""))
    L.append("- ext4: %s (loop dio=%s); passthrough_ll %s over the ext4's bench folder (the same files)"
             % (info.get("ext4", "?"), info.get("loop_dio", "?"), info.get("passthrough_options", "?")))
    L.append("")
    L.append("Every fio job: libaio (fsync: psync) and O_DIRECT on every target. **raw** for a job that "
             "writes is fio writing both images at once (two processes, the same job on each), and the "
             "rate shown is the aggregate / 2: the logical rate of a mirror, each mirrored write landing "
             "on both; for a read job it is one image, and \"raw images x2\" is both read at once "
             "(aggregate). The last column is dmiofs / the row's target (above 1: dmiofs is faster). Latencies are "
             "fio's completion latency (clat) in µs, p50 and p99 (for raw x2 the larger of the two "
             "images'); fsync also shows the fdatasync latency. CPU s/GiB and peak RSS are the FUSE "
             "daemon's (dmiofs, passthrough_ll): utime + stime from /proc/PID/stat over the run, per GiB "
             "fio moved, and VmHWM reset before each run; the metadata job gives CPU µs per operation.")
    L.append("")
    L.append("## Summary: dmiofs / reference")
    L.append("")
    L.append("| job | dmiofs | unit | / raw | / ext4 | / passthrough |")
    L.append("|---|---|---|---|---|---|")
    for job in jobs:
        d = job["targets"].get("dmiofs")
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            job["name"], fmt_num(d["rate"]) if d else "–", job["unit"],
            *(fmt_ratio(job["ratios"].get(t)) for t in REFERENCES)))
    L.append("")
    for job in jobs:
        L.append("## " + job_heading(job))
        L.append("")
        order = [t for t in TARGETS if t in job["targets"] or (job["kind"] == "meta" and t != "raw2")]
        if job["kind"] == "meta":
            L.append("| target | create/s | stat/s | rename/s | unlink/s | all ops/s | CPU µs/op | peak RSS | dmiofs / row |")
            L.append("|---|---|---|---|---|---|---|---|---|")
            for t in order:
                r = job["targets"].get(t)
                if r is None:
                    L.append("| %s | – | – | – | – | – | – | – | – |" % (
                        "raw images" if t == "raw" else TARGET_NAMES[t] + " (not run)"))
                    continue
                L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    TARGET_NAMES[t], *(fmt_num(r[p + "_ops_per_s"]) for p in PHASES), fmt_num(r["rate"]),
                    fmt_num(r.get("daemon_cpu_us_per_op")), fmt_rss(r.get("daemon_peak_rss_kib")),
                    "–" if t == "dmiofs" else fmt_ratio(job["ratios"].get(t))))
            if "passthrough" not in job["targets"] and info.get("passthrough_meta_skipped"):
                L.append("")
                L.append("No passthrough row: " + info["passthrough_meta_skipped"] + ".")
            pr = job.get("phase_ratios", {})
            if pr:
                L.append("")
                L.append("Per phase, dmiofs / target: " + "; ".join(
                    "%s %s" % (TARGET_NAMES[t], ", ".join("%s %s" % (p, fmt_ratio(pr[t][p])) for p in PHASES))
                    for t in TARGETS if t in pr) + ".")
        else:
            L.append("| target | %s | p50 µs | p99 µs | CPU s/GiB | peak RSS | dmiofs / row |" % job["unit"])
            L.append("|---|---|---|---|---|---|---|")
            for t in order:
                r = job["targets"][t]
                name = TARGET_NAMES[t]
                if t == "raw" and r["mode"] == "both-half":
                    name = "raw images x2 (aggregate / 2)"
                p50, p99 = lat_cells(job["kind"], r)
                L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    name, fmt_num(r["rate"]), p50, p99, fmt_num(r.get("daemon_cpu_s_per_gib")),
                    fmt_rss(r.get("daemon_peak_rss_kib")),
                    "–" if t == "dmiofs" else fmt_ratio(job["ratios"].get(t))))
        L.append("")
    return "\n".join(L)


def chart(out, raw, jobs):
    """ratios.png: per job, dmiofs / raw, ext4 and passthrough, a line at 1."""
    dat = os.path.join(raw, "ratios.dat")
    vals = []
    with open(dat, "w") as f:
        f.write("# x job dmiofs/raw dmiofs/ext4 dmiofs/passthrough\n")
        for i, job in enumerate(jobs):
            row = [job["ratios"].get(t) for t in REFERENCES]
            vals += [v for v in row if v]
            f.write("%d %s %s\n" % (i, job["name"], " ".join("NaN" if v is None else "%.4f" % v for v in row)))
    if not vals:
        return
    hi, lo = max(vals), min(vals)
    logscale = hi / lo > 20
    gp = os.path.join(raw, "ratios.gp")
    with open(gp, "w") as f:
        f.write('set terminal pngcairo size 1400,620 font "sans,10"\n')
        f.write('set output "%s"\n' % os.path.join(out, "ratios.png"))
        f.write('set title "dmiofs / reference, per job (above 1: dmiofs faster)"\n')
        f.write("set style fill solid 0.85 border -1\n")
        f.write("set boxwidth 0.26\n")
        f.write("set grid ytics\n")
        f.write("set key top left\n")
        f.write('set ylabel "ratio"\n')
        f.write("set xrange [-0.6:%f]\n" % (len(jobs) - 0.4))
        if logscale:
            f.write("set logscale y\n")
            f.write('set ylabel "ratio (log scale)"\n')
            f.write("set ytics (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)\n")
            f.write("set yrange [%f:%f]\n" % (lo / 1.6, hi * 1.6))
        else:
            f.write("set yrange [0:%f]\n" % max(1.25, hi * 1.15))
        f.write("set xtics (%s) rotate by -30\n" % ", ".join('"%s" %d' % (j["name"], i) for i, j in enumerate(jobs)))
        f.write("set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black' front\n")
        series = [(-0.27, 3, "raw images", "#4e79a7"), (0.0, 4, "ext4 on loop", "#f28e2b"),
                  (0.27, 5, "FUSE passthrough", "#59a14f")]
        plots = []
        for off, col, title, colour in series:
            plots.append("'%s' using ($1%+.2f):%d with boxes lc rgb '%s' title '%s'" % (dat, off, col, colour, title))
        for off, col, _, _ in series:
            plots.append("'' using ($1%+.2f):%d:(sprintf('%%.2f', $%d)) with labels offset 0,0.7 font ',7' notitle"
                         % (off, col, col))
        f.write("plot " + ", \\\n     ".join(plots) + "\n")
    try:
        subprocess.run(["gnuplot", gp], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("report.py: gnuplot failed (%s); no ratios.png" % e, file=sys.stderr)


if __name__ == "__main__":
    main()
