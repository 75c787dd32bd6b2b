#!/usr/bin/python3
# Benchmark (not a test): camd explain throughput and latency at several concurrencies, batching on/off.
"""Starts the real camd binary on 127.0.0.1 and POSTs one image to /v1/models/<m>/explain from
C client threads (keep-alive), for C in --concurrency, once with dynamic batching off
(max_batch 1) and once on (max_batch 8, batch_window_us 5000). Prints requests/s, p50 and p99.

The model defaults to resnet50 with seeded random weights, exported once into --model-dir with
models/export_torchvision.py --random-weights (Debian's torch; no network).

  /usr/bin/python3 tests/bench/load.py --camd build/camd [--requests 24] [--concurrency 1,2,8]
"""
import argparse
import http.client
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def ensure_model(model_dir, name):
    entry = os.path.join(model_dir, name + ".json")
    if not os.path.exists(entry):
        os.makedirs(model_dir, exist_ok=True)
        print(f"exporting {name} (random weights) into {model_dir} ...", flush=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "models", "export_torchvision.py"), name,
                        "--random-weights", "--out", model_dir], check=True)
    return entry


def test_image():
    try:
        from PIL import Image
        import numpy as np
        rng = np.random.default_rng(1)
        arr = (rng.random((300, 400, 3)) * 255).astype("uint8")
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        return buf.getvalue(), "image/jpeg"
    except ImportError:
        sys.exit("needs PIL and numpy (Debian python3-pil, python3-numpy)")


class Server:
    def __init__(self, camd, config, extra):
        self.log = tempfile.NamedTemporaryFile(prefix="camd-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([camd, "serve", "--config", config, "--port", "0",
                                      "--log-level", "warn", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        # log level warn hides the ready line: find the port from /proc instead
        deadline = time.time() + 120
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                sys.exit("camd exited:\n" + open(self.log.name).read())
            self.port = self._listening_port()
            time.sleep(0.1)
        self._wait_ready()

    def _listening_port(self):
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
                link = os.readlink(f"/proc/{self.proc.pid}/fd/{fd}")
                m = re.match(r"socket:\[(\d+)\]", link)
                if m:
                    inodes.add(m.group(1))
            with open("/proc/net/tcp") as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[3] == "0A" and parts[9] in inodes:
                        return int(parts[1].split(":")[1], 16)
        except OSError:
            pass
        return None

    def _wait_ready(self):
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        sys.exit("camd not ready")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)
        os.unlink(self.log.name)


def run_level(port, path, body, ctype, conc, n_requests):
    lat = []
    lock = threading.Lock()
    counter = [0]
    errors = []

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if counter[0] >= n_requests:
                    break
                counter[0] += 1
            t0 = time.perf_counter()
            c.request("POST", path, body, {"Content-Type": ctype})
            r = c.getresponse()
            r.read()
            dt = time.perf_counter() - t0
            with lock:
                if r.status != 200:
                    errors.append(r.status)
                lat.append(dt)
        c.close()

    threads = [threading.Thread(target=client) for _ in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] * 1e3
    return n_requests / wall, pct(0.5), pct(0.99), errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camd", default=os.path.join(ROOT, "build", "camd"))
    ap.add_argument("--model", default="resnet50", help="torchvision model name to export")
    ap.add_argument("--model-dir", default="/tmp/camd-bench-models")
    ap.add_argument("--requests", type=int, default=24, help="requests per concurrency level")
    ap.add_argument("--concurrency", default="1,2,8")
    ap.add_argument("--method", default="gradcam")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    entry = ensure_model(args.model_dir, args.model)
    with open(entry) as f:
        model = json.load(f)
    model["name"] = args.model
    cfg_path = os.path.join(args.model_dir, f"bench-{args.model}.camd.json")
    with open(cfg_path, "w") as f:
        json.dump({"models": [model], "queue_length": 1024}, f)
    body, ctype = test_image()
    path = f"/v1/models/{args.model}/explain?method={args.method}"
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"camd {args.camd}, model {args.model}, method {args.method}, {args.workers} workers, "
          f"{os.cpu_count()} cores, {args.requests} requests per level, image 400x300 JPEG")
    print(f"{'batching':>9} {'conc':>5} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
    for label, extra in (("off", ["--max-batch", "1"]),
                         ("on", ["--max-batch", "8", "--batch-window-us", "5000"])):
        srv = Server(args.camd, cfg_path, ["--workers", str(args.workers), *extra])
        try:
            run_level(srv.port, path, body, ctype, 1, 2)  # warm-up
            for c in levels:
                rps, p50, p99, errors = run_level(srv.port, path, body, ctype, c, args.requests)
                note = f"  ({len(errors)} errors: {sorted(set(errors))})" if errors else ""
                print(f"{label:>9} {c:>5} {rps:>8.2f} {p50:>9.1f} {p99:>9.1f}{note}", flush=True)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
