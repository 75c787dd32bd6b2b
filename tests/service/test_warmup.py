#!/usr/bin/python3
# Service test: the workers' warm-up (config key warmup): each worker explains a blank image once.
"""Usage: test_warmup.py CAMD FIXTURES. Starts camd on 127.0.0.1 with 2 workers, warm-up on (the
default) and off: with it on, every worker logs its warm-up with the default model, the metrics
count no request, and an explain answer is the same as the answer of a server without warm-up
(the warm-up's run leaves nothing behind in a worker that a request could see). A default method
that costs masked forwards (scorecam) is warmed up as gradcam; another (eigencam) as itself. An
out-of-range value is refused at start with a message naming the key."""
import json
import os
import re
import subprocess
import tempfile
import time

import camdtest as ct
from camdtest import Server, fixture, strip_volatile

ct.init()
C = ct.Checker()
PNG = fixture("small.png")
HDR = {"Content-Type": "image/png"}
PATH = "/v1/models/tiny/explain?outputs=raw,bbox&target=top2"


def warmed(srv):
    return re.findall(r"worker (\d+): warmed up with model '(\S+)' \((\S+)\) in", srv.text())


def wait_warmed(srv, n):
    deadline = time.time() + 60
    while len(warmed(srv)) < n and time.time() < deadline:
        time.sleep(0.05)
    return warmed(srv)


with Server("--workers", "2", "--blas-threads", "1", "--max-batch", "1") as srv:
    w = wait_warmed(srv, 2)
    C.check(sorted(w) == [("0", "tiny", "gradcam"), ("1", "tiny", "gradcam")],
            f"both workers warmed up with the default model: {w}\n{srv.text()[-2000:]}")
    st, h, data = srv.request("GET", "/metrics")
    text = data.decode()
    C.check(st == 200 and 'route="explain"' not in text and "camd_batch_size_count 0" in text,
            "the warm-up is not counted as a request: " +
            " ".join(l for l in text.splitlines() if "explain" in l or "_count" in l)[:600])
    answers_on = []
    for _ in range(4):  # both workers answer at least once between them
        st, h, b = srv.json("POST", PATH, PNG, HDR)
        C.check(st == 200, f"explain after the warm-up: {st} {str(b)[:300]}")
        answers_on.append(strip_volatile(b))
    C.check(srv.stop() == 0, "exit 0 on SIGTERM")

with Server("--workers", "2", "--blas-threads", "1", "--max-batch", "1", "--warmup", "0") as srv:
    st, h, b = srv.json("POST", PATH, PNG, HDR)
    C.check(st == 200, f"explain without warm-up: {st} {str(b)[:300]}")
    C.check(not warmed(srv) and "warm-up" not in srv.text(), "warmup 0: no warm-up run")
    off = strip_volatile(b)
    C.check(all(a == off for a in answers_on),
            "the same answer with and without the warm-up (JSON numbers and PNG bytes)")
    C.check(srv.stop() == 0, "exit 0 on SIGTERM (warmup 0)")

# The model's default method decides the warm-up's, unless it costs masked forwards.
with open(os.path.join(ct.FIX, "camd.json")) as f:
    base = json.load(f)
for method, expect in (("scorecam", "gradcam"), ("eigencam", "eigencam")):
    cfg = dict(base)
    fix = os.path.abspath(ct.FIX)
    cfg["models"] = [dict(m, path=os.path.join(fix, m["path"]),
                          labels=os.path.join(fix, m["labels"])) for m in base["models"]]
    cfg["models"][0]["default_method"] = method
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    try:
        with Server("--workers", "1", config=f.name) as srv:
            w = wait_warmed(srv, 1)
            C.check(w == [("0", "tiny", expect)],
                    f"default_method {method}: warmed up with {expect}: {w}\n{srv.text()[-1500:]}")
            C.check(srv.stop() == 0, f"exit 0 on SIGTERM (default_method {method})")
    finally:
        os.unlink(f.name)

p = subprocess.run([ct.CAMD, "serve", "--config", f"{ct.FIX}/camd.json", "--port", "0",
                    "--warmup", "2"], capture_output=True, text=True, timeout=60)
C.check(p.returncode != 0 and "warmup" in (p.stdout + p.stderr),
        f"warmup 2 refused at start: {p.returncode} {(p.stdout + p.stderr)[-300:]}")
C.done("service.warmup")
