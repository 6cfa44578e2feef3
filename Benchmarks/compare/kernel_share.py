#!/usr/bin/env python3
"""Where a training step's time goes: C kernels, the OpenMP runtime, Swift bookkeeping, memory.

Samples `cnn bench train --case CASE --no-forward` with Linux perf (`apt-get install linux-perf`)
and sorts the samples by the symbol they landed in:

  kernels      the C kernels (cnn_*, OpenMP-outlined kernel bodies, GEMM blocks)
  openmp       the OpenMP runtime (libomp: fork/join, barriers, spinning workers)
  swift        Swift code and runtime (the CNN module, autograd graph, ARC, allocation in Swift)
  memory       libc memset/memcpy/malloc/free and the kernel's page faults and zeroing
  other        everything else (scheduler, the loader, ...)

The FMA-peak probe that `cnn bench` runs first is left out. Sampling proportions hold on a busy
machine better than wall times do, but spinning OpenMP workers grow when cores are contended.

    python3 Benchmarks/compare/kernel_share.py --case lenet5 [--cnn .build/release/cnn] [--json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def classify(dso, sym):
    if sym.startswith("peak_") or "peakGFLOPS" in sym:
        return None
    if "libomp" in dso or sym.startswith("__kmp") or sym.startswith("__kmpc"):
        return "openmp"
    if dso == "[kernel.kallsyms]":
        return "memory" if any(k in sym for k in ("page", "fault", "clear_page", "memset", "memcpy")) else "other"
    if dso.startswith("libc") and any(k in sym for k in ("memset", "memmove", "memcpy", "malloc", "free", "posix_memalign", "_int_")):
        return "memory"
    if dso.startswith("libswift") or dso.startswith("libFoundation") or sym.startswith("$s") or sym.startswith("swift_"):
        return "swift"
    if sym.startswith("cnn_") or ".omp_outlined" in sym or sym.startswith("gemm_") or "__avx" in sym or "_generic" in sym \
            or dso == "cnn" and not sym.startswith("0x"):
        return "kernels"
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="lenet5", help="training case (substring of its name)")
    ap.add_argument("--repeat", type=int, default=10, help="timed steps")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--cnn", default=os.path.join(REPO, ".build", "release", "cnn"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is not installed (apt-get install linux-perf)")
    if not os.path.exists(a.cnn):
        sys.exit(f"{a.cnn} not found: swift build -c release --product cnn")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        run = subprocess.run(["perf", "record", "-F", "1999", "-o", data, a.cnn, "bench", "train", "--case", a.case,
                              "--no-forward", "--repeat", str(a.repeat), "--threads", str(a.threads), "--json"],
                             capture_output=True, text=True, env=env)
        if run.returncode != 0:
            sys.exit("perf record failed: " + run.stderr.strip()[-500:])
        bench = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio",
                              "--percent-limit", "0", "-F", "overhead,dso,sym"], capture_output=True, text=True)
    shares = {"kernels": 0.0, "openmp": 0.0, "swift": 0.0, "memory": 0.0, "other": 0.0}
    top = []
    for line in rep.stdout.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].endswith("%") or line.startswith("#"):
            continue
        pct, dso, sym = float(parts[0].rstrip("%")), parts[1], " ".join(parts[3:])
        kind = classify(dso, sym)
        if kind is None:
            continue
        shares[kind] += pct
        top.append((pct, kind, sym))
    total = sum(shares.values()) or 1.0
    shares = {k: 100 * v / total for k, v in shares.items()}
    out = {"case": bench[0]["case"] if bench else a.case, "threads": a.threads, "step_ms": bench[0]["ms"] if bench else None,
           "share_percent": shares, "top": [{"percent": round(100 * p / total, 2), "kind": k, "symbol": s}
                                            for p, k, s in sorted(top, reverse=True)[:12]],
           "load_average": os.getloadavg()}
    if a.json:
        print(json.dumps(out))
        return
    print(f"# {out['case']}, {a.threads} threads, step {out['step_ms']} ms (median under perf), "
          f"load average {' '.join('%.2f' % x for x in out['load_average'])}")
    for k, v in shares.items():
        print(f"{k:8s} {v:5.1f} %")
    print("# top symbols")
    for t in out["top"]:
        print(f"{t['percent']:5.1f} %  {t['kind']:8s} {t['symbol']}")


if __name__ == "__main__":
    main()
