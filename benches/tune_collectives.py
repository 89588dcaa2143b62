#!/usr/bin/env python3
"""Measures every algorithm of the collectives oxbench covers, for building the
selection table of src/coll/select.rs (docs/collectives.md): runs
`oxrun -n NP target/release/oxbench OP -m MAX -i ITERS` with each algorithm forced
through OXMPI_COLL_<OP>, interleaved, ROUNDS rounds, and prints per size the median
latency (us) of each algorithm and the winner.

usage: benches/tune_collectives.py NPS OPS ROUNDS [ITERS [MAX]]
  e.g. benches/tune_collectives.py 2,4,8 allreduce,bcast,alltoall 3
Run from the project root after `cargo build --release`."""
import os, statistics, subprocess, sys

SM = "shared_memory"
ALGS = {"allreduce": ["recursive_doubling", "rabenseifner", "ring", "linear", SM],
        "bcast": ["binomial", "scatter_allgather", "linear", SM],
        "alltoall": ["bruck", "pairwise", "linear", SM],
        "allgather": ["recursive_doubling", "bruck", "ring", SM],
        "reduce": ["binomial", "reduce_scatter_gather", SM],
        "gather": ["binomial", "linear", SM],
        "scatter": ["binomial", "linear", SM],
        "barrier": ["dissemination", "linear", SM],
        "reduce-scatter": ["recursive_halving", "ring"]}
VAR = {"reduce-scatter": "OXMPI_COLL_REDUCE_SCATTER_BLOCK"}

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    nps = [int(x) for x in sys.argv[1].split(",")]
    ops = sys.argv[2].split(",")
    rounds, iters = int(sys.argv[3]), (sys.argv[4] if len(sys.argv) > 4 else "300")
    top = sys.argv[5] if len(sys.argv) > 5 else "1048576"
    res = {}
    for _ in range(rounds):
        for op in ops:
            for np in nps:
                for alg in ALGS[op]:
                    env = dict(os.environ, **{VAR.get(op, "OXMPI_COLL_" + op.upper()): alg})
                    cmd = ["target/release/oxrun", "-n", str(np), "target/release/oxbench", op, "-m", top, "-i", iters]
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600).stdout
                    for line in out.splitlines():
                        p = line.split()
                        if p and not line.startswith("#"):
                            res.setdefault((op, np, alg, int(p[0])), []).append(float(p[1]))
    for op in ops:
        for np in nps:
            print(f"# {op} np={np}: " + " ".join(ALGS[op]))
            for s in sorted({k[3] for k in res if k[:2] == (op, np)}):
                meds = [statistics.median(res.get((op, np, a, s), [float("nan")])) for a in ALGS[op]]
                best = ALGS[op][min(range(len(meds)), key=lambda i: meds[i])]
                print(f"{s:>8} " + " ".join(f"{m:>10.2f}" for m in meds) + f"  {best}")

if __name__ == "__main__":
    main()
