#!/usr/bin/python3
"""Hostile ONNX files against the real binary (tests/onnx/make_hostile.py makes them).

Usage: check_hostile.py CAMD DIR

For each file: `camd serve` with a config naming it must refuse to start (exit status != 0)
with a message naming the limit or the fault, within 120 s and with bounded memory (peak RSS
below 400 MiB, ASan's own overhead included; the files declare tens of GiB). `camd inspect`
gives the same message. The deep graph (20000 nodes) loads by default and is refused under
--max-tensor-elements 100; big_initializer.onnx (8 MiB) loads by default and is refused under
--max-model-bytes 1048576.
"""
import json
import os
import resource
import subprocess
import sys
import time

CAMD, DIR = sys.argv[1], sys.argv[2]
if not os.path.exists(os.path.join(DIR, "cycle.onnx")):
    print("SKIPPED: hostile models missing (python3-onnx?)")
    sys.exit(77)

failures = 0
RSS_LIMIT_KB = 400 * 1024


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def run(args, timeout=120):
    """Runs camd; returns (exit status, output, peak RSS kB, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMD_")}
    t0 = time.time()
    p = subprocess.Popen([CAMD, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None, out.decode(errors="replace"), 0, timeout
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # peak of the largest child so far
    return p.returncode, out.decode(errors="replace"), ru.ru_maxrss, time.time() - t0


def config(model, extra=None):
    m = {"name": "hostile", "path": os.path.join(DIR, model)}
    m.update(extra or {})
    path = os.path.join(DIR, model + ".json")
    with open(path, "w") as f:
        json.dump({"listen": "127.0.0.1", "port": 0, "workers": 1, "models": [m]}, f)
    return path


size8 = {"width": 8, "height": 8, "resize": "stretch"}
refused = [
    ("overflow_dims.onnx", size8, [], "element count overflows"),
    ("billions_declared.onnx", size8, [], "has 10000000000 elements"),
    ("huge_external.onnx", size8, [], "past the end of"),
    ("huge_activation.onnx", size8, [], "max_tensor_elements"),
    ("overflow_activation.onnx", size8, [], "out of range"),
    ("huge_input.onnx", {}, [], "max_tensor_elements"),
    ("nested_graphs.onnx", size8, [], "more than 64 levels deep"),
    ("cycle.onnx", size8, [], "topological order"),
    ("big_initializer.onnx", size8, ["--max-model-bytes", "1048576"], "max_model_bytes"),
    ("deep_graph.onnx", size8, ["--max-tensor-elements", "100"], "max_tensor_elements"),
]
for model, extra, flags, needle in refused:
    rc, out, rss, secs = run(["serve", "--config", config(model, extra), "--port", "0", *flags])
    check(rc not in (None, 0), f"{model}: camd serve exit status {rc} (expected a refusal)")
    check(needle in out, f"{model}: the message does not mention {needle!r}:\n{out[-600:]}")
    check("AddressSanitizer" not in out and "LeakSanitizer" not in out, f"{model}: sanitizer:\n{out}")
    print(f"{model}: refused in {secs:.2f} s: {out.strip().splitlines()[-1][:200] if out.strip() else ''}")
    if not flags:
        rc2, out2, _, _ = run(["inspect", os.path.join(DIR, model)])
        check(rc2 not in (None, 0) and (needle in out2 or model == "huge_input.onnx"),
              f"{model}: camd inspect: {rc2} {out2[-300:]}")
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
check(peak < RSS_LIMIT_KB, f"peak RSS {peak} kB of a refused load exceeds {RSS_LIMIT_KB} kB")
print(f"peak RSS of the refused loads: {peak / 1024:.0f} MiB")

# Loads: the deep chain (bounded time) and the big initializer under the default limit.
for model in ("deep_graph.onnx", "big_initializer.onnx"):
    rc, out, _, secs = run(["inspect", os.path.join(DIR, model)], timeout=300)
    check(rc == 0, f"{model}: camd inspect exit {rc}: {out[-400:]}")
    print(f"{model}: loads in {secs:.2f} s")

print("check_hostile:", "FAILED" if failures else "passed")
sys.exit(1 if failures else 0)
