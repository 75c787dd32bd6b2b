#!/usr/bin/python3
# Engine benchmark: camd vs PyTorch vs ONNX Runtime (node) on the oracle's models, 1 and 2 threads.
"""Compares camd's forward and forward+backward-to-layer latency with PyTorch's and ONNX
Runtime's on the same ONNX files the oracle suite exports (tests/oracle/gen_oracle.py).

camd runs twice: first with the OpenBLAS core type as configured (OPENBLAS_CORETYPE from the
environment, or Haswell/AVX2 when the environment sets none), then with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset, which lets camd pick the kernels itself (AVX-512 "SkylakeX" on CPUs that
have it). Before the second set is timed its numbers are checked against the oracle's PyTorch
reference (logits via `camd bench --input/--dump-output`, and the whole oracle test when the
test_oracle binary is found).

usage: /usr/bin/python3 tests/bench/bench_engine.py --build BUILD_DIR [--models resnet50,mobilenet_v2]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_oracle(oracle_dir, models):
    missing = [m for m in models if not os.path.exists(os.path.join(oracle_dir, m, "meta.json"))]
    if missing:
        log(f"generating oracle data for {','.join(missing)} in {oracle_dir}")
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "oracle", "gen_oracle.py"),
                        "--out", oracle_dir, "--models", ",".join(missing)], check=True)


def env_variant(unset):
    env = dict(os.environ)
    env.pop("CAMD_BLAS_AUTOTUNE", None)
    if unset:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        label = "camd (CORETYPE/L2 unset)"
    else:
        env.setdefault("OPENBLAS_CORETYPE", "Haswell")
        label = f"camd ({env['OPENBLAS_CORETYPE']})"
    return env, label


def camd_bench(camd, onnx_path, layer, threads, runs, warmup, env):
    cmd = [camd, "bench", onnx_path, "--threads", str(threads), "--layer", layer,
           "--runs", str(runs), "--warmup", str(warmup)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if int(r.get("threads", threads)) == threads:
                return r
    raise RuntimeError(f"{' '.join(cmd)}: no JSON line in output: {out.stdout!r}")


def check_camd_numbers(camd, test_oracle, oracle_dir, model, env):
    """Logits of camd under `env` against the oracle reference; then the full oracle test."""
    import numpy as np

    d = os.path.join(oracle_dir, model)
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    case = next(c for c in meta["cases"] if c["batch"] == 1)
    dump = os.path.join(oracle_dir, f".bench-{model}-logits.bin")
    cmd = [camd, "bench", os.path.join(d, meta["onnx"]), "--threads", "1", "--runs", "1",
           "--warmup", "0", "--input", os.path.join(d, case["input"]), "--dump-output", dump]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    got = np.fromfile(dump, dtype="<f4")
    os.remove(dump)
    ref = np.fromfile(os.path.join(d, case["logits"]), dtype="<f4")
    if got.shape != ref.shape:
        raise RuntimeError(f"{model}: camd dumped {got.size} logits, reference has {ref.size}")
    diff = float(np.abs(got.astype(np.float64) - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    log(f"{model}: logits with CORETYPE/L2 unset: max|diff| {diff:.2e} (tol {tol:.2e})")
    if not diff <= tol:
        raise RuntimeError(f"{model}: camd logits differ from the reference by {diff:.3e}")
    if test_oracle:
        t0 = time.time()
        out = subprocess.run([test_oracle, oracle_dir, model], env=env, capture_output=True,
                             text=True)
        summary = out.stdout.strip().splitlines()[-1:] or ["(no output)"]
        log(f"{model}: test_oracle with CORETYPE/L2 unset: {summary[0]} "
            f"({time.time() - t0:.0f}s)")
        if out.returncode != 0:
            raise RuntimeError(f"{model}: test_oracle failed with CORETYPE/L2 unset:\n"
                               + out.stdout[-3000:])


def torch_bench(model, threads, runs, warmup):
    import torch

    import gen_oracle

    torch.set_num_threads(threads)
    spec = gen_oracle.SPECS[model]
    size = spec.get("size", 224)
    wrapped = gen_oracle.Wrapped(gen_oracle.build(model, spec), spec).eval()
    for p in wrapped.parameters():
        p.requires_grad_(False)
    layer_index = 1 + len(wrapped.names) - 1  # the last (CAM) layer, as camd bench --layer
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))

    def fwd():
        with torch.no_grad():
            wrapped(x)

    def fwd_bwd():
        xi = x.clone().requires_grad_(True)  # keeps what backward needs, like camd's grad_to
        outs = wrapped(xi)
        cls = int(outs[0][0].argmax())
        torch.autograd.grad(outs[0][0, cls], outs[layer_index])

    res = {}
    for key, fn in (("forward_ms_median", fwd), ("fwd_bwd_ms_median", fwd_bwd)):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        res[key] = statistics.median(times)
    res["layer"] = wrapped.names[-1]
    return res


def ensure_ort():
    """Installs onnxruntime-node into tests/bench/node_modules on demand; returns an error
    message when it cannot (no node/npm, no registry)."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not found"
    if os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        return None
    log("installing onnxruntime-node into tests/bench/node_modules (npm install --ignore-scripts)")
    out = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"],
                         cwd=HERE, capture_output=True, text=True)
    if out.returncode != 0:
        return "npm install onnxruntime-node failed: " + out.stderr.strip()[-500:]
    return None


def ort_bench(onnx_path, threads, runs, warmup, size):
    cmd = ["node", os.path.join(HERE, "ort_bench.js"), onnx_path, "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup), "--shape", f"1,3,{size},{size}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError(f"ort_bench failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(v):
    return f"{v:9.1f}" if isinstance(v, (int, float)) else f"{'-':>9}"


def ratio(a, b):
    return f"{a / b:6.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b \
        else f"{'-':>6}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="CMake build directory holding camd (and tests/test_oracle)")
    ap.add_argument("--camd", help="camd binary (default BUILD/camd)")
    ap.add_argument("--oracle", help="oracle data directory (default BUILD/oracle)")
    ap.add_argument("--models", default="resnet50", help="comma-separated (default resnet50)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the reference check before the CORETYPE/L2-unset run")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()
    if args.runs < 20:
        log("note: fewer than 20 runs per median")
    camd = args.camd or os.path.join(args.build, "camd")
    oracle_dir = os.path.abspath(args.oracle or os.path.join(args.build, "oracle"))
    test_oracle = os.path.join(args.build, "tests", "test_oracle")
    test_oracle = test_oracle if os.access(test_oracle, os.X_OK) else None
    if not os.access(camd, os.X_OK):
        log(f"camd binary not found at {camd} (build it, or pass --build/--camd)")
        return 2
    models = [m for m in args.models.split(",") if m]
    threads = [int(t) for t in args.threads.split(",") if t]
    ensure_oracle(oracle_dir, models)

    ort_error = "disabled (--no-ort)" if args.no_ort else ensure_ort()
    if ort_error:
        log(f"ONNX Runtime skipped: {ort_error}")

    env_cfg, label_cfg = env_variant(unset=False)
    env_unset, label_unset = env_variant(unset=True)
    results = []
    for model in models:
        d = os.path.join(oracle_dir, model)
        with open(os.path.join(d, "meta.json")) as f:
            meta = json.load(f)
        onnx_path = os.path.join(d, meta["onnx"])
        layer = meta["layers"][-1]["name"]
        size = meta["input"]["shape"][2]
        checked = args.no_check
        if not checked:
            check_camd_numbers(camd, test_oracle, oracle_dir, model, env_unset)
        for t in threads:
            row = {"model": model, "threads": t, "layer": layer}
            log(f"{model} threads={t}: camd")
            row["camd"] = camd_bench(camd, onnx_path, layer, t, args.runs, args.warmup, env_cfg)
            log(f"{model} threads={t}: camd, CORETYPE/L2 unset")
            row["camd_unset"] = camd_bench(camd, onnx_path, layer, t, args.runs, args.warmup,
                                           env_unset)
            log(f"{model} threads={t}: PyTorch")
            row["torch"] = torch_bench(model, t, args.runs, args.warmup)
            if not ort_error:
                log(f"{model} threads={t}: ONNX Runtime")
                try:
                    row["ort"] = ort_bench(onnx_path, t, args.runs, args.warmup, size)
                except (RuntimeError, ValueError) as e:
                    log(f"ONNX Runtime failed: {e}")
            results.append(row)

    # Table: medians in ms and ratios (below 1: camd is faster). fwd+bwd is a forward that keeps
    # what backward needs plus the backward to the layer; bwd is camd's backward alone.
    print(f"camd kernels: {label_cfg} vs {label_unset}; medians of {args.runs} runs, batch 1, "
          f"backward from the top logit to the last layer")
    print(f"{'model':<14}{'thr':>4} {'runtime':<28}{'fwd ms':>9}{'fwd+bwd':>9}{'bwd':>9}"
          f"{'fwd/torch':>10}{'f+b/torch':>10}{'fwd/ort':>9}")
    for r in results:
        tf, tb = r["torch"]["forward_ms_median"], r["torch"]["fwd_bwd_ms_median"]
        of = r.get("ort", {}).get("forward_ms_median")
        for key, label in (("camd", label_cfg), ("camd_unset", label_unset)):
            c = r[key]
            cf, cfb = c.get("forward_ms_median"), c.get("forward_backward_ms_median")
            cb = c.get("backward_ms_median")
            print(f"{r['model']:<14}{r['threads']:>4} {label:<28}{fmt(cf)}{fmt(cfb)}{fmt(cb)}"
                  f"{ratio(cf, tf):>10}{ratio(cfb, tb):>10}{ratio(cf, of):>9}")
        print(f"{r['model']:<14}{r['threads']:>4} {'PyTorch ' + _torch_version():<28}"
              f"{fmt(tf)}{fmt(tb)}{fmt(None)}")
        if of is not None:
            print(f"{r['model']:<14}{r['threads']:>4} {'ONNX Runtime (node) ' + str(r['ort'].get('version') or ''):<28}"
                  f"{fmt(of)}{fmt(None)}{fmt(None)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _torch_version():
    import torch

    return torch.__version__


if __name__ == "__main__":
    sys.exit(main())
