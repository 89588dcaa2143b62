#!/usr/bin/env python3
"""Runs ../shared/tools/compare-mpi RUNS times with the given arguments (from the
project root, after `cargo build --release`) and prints, per test and size, the median
over the runs of each run's ratio oxmpi/Open MPI and oxmpi/best peer (below 1.0: oxmpi
ahead), and the median times. usage: benches/compare_runs.py RUNS COMPARE-MPI-ARGS..."""
import os, re, statistics, subprocess, sys
runs = int(sys.argv[1]); args = sys.argv[2:]
tables = {}  # (test) -> size -> list of (ox, ompi, mpich)
for r in range(runs):
    out = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools", "compare-mpi"), *args], capture_output=True, text=True).stdout
    test, names = None, []
    for line in out.splitlines():
        m = re.match(r"# (\S+)\s+np=(\d+)", line)
        if m: test = f"{m.group(1)} np={m.group(2)}"; continue
        p = line.split()
        if p and p[0] == "size": names = p[1:]; continue  # an implementation not found has no column
        if test and p and p[0].isdigit():
            got = dict(zip(names, p[1:]))
            vals = [float(got[k]) if got.get(k, '-') != '-' else None for k in ("oxmpi", "openmpi", "mpich")]
            tables.setdefault(test, {}).setdefault(int(p[0]), []).append(vals)
for test, rows in tables.items():
    bw = test.startswith("bw")
    print(f"\n# {test}: median over {runs} runs of per-run ratios (<1: oxmpi ahead)")
    print(f"{'size':>9} {'ox/ompi':>8} {'ox/best':>8}   ox-median ompi-median mpich-median")
    for size in sorted(rows):
        rr = rows[size]
        def ratio(v, peers):
            peers = [x for x in peers if x]
            if not v[0] or not peers: return None
            return (max(peers) / v[0]) if bw else (v[0] / min(peers))
        r_ompi = [ratio(v, [v[1]]) for v in rr]; r_best = [ratio(v, v[1:]) for v in rr]
        med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else float('nan')
        cols = [med([v[i] for v in rr]) for i in range(3)]
        print(f"{size:>9} {med(r_ompi):>8.2f} {med(r_best):>8.2f}   {cols[0]:>9.3f} {cols[1]:>11.3f} {cols[2]:>12.3f}  ({len(rr)} runs)")
