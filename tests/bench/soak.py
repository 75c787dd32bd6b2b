#!/usr/bin/python3
# Soak and overload run (not a test; figures for the closing notes of issue 8).
"""Soak: N explain requests (default 10^4) from C keep-alive clients (default 8) against the real
camd on 127.0.0.1; prints errors, requests/s, p50/p99 per tenth of the run, and the server's RSS
sampled through the run (flat = max/min after warm-up, the first tenth, within 5 %).
Overload: 1 worker, queue_length 2, C2 clients (default 32) send without pause for a few seconds;
prints how many got 503 and how fast (p50/p99/max ms from send to the 503's last byte; the
target is < 10 ms) and that every 503 carries Retry-After. The overload load comes from the C
client BUILD/tests/overload_client (tests/bench/overload_client.c, one blocked thread per
connection); `--client python` uses Python threads instead, whose shared interpreter lock adds
~20 ms to the p99 on 2 cores (measured side by side: p99 34 ms Python vs 9.8 ms C).

  /usr/bin/python3 tests/bench/soak.py --camd build/camd [--model resnet50 | --model default]
       [--requests 10000] [--clients 8] [--overload-clients 32] [--overload-seconds 5]
       [--client c|python]

--model default serves config/camd.json's default model (fashion_cam, 28x28); resnet50 is
exported once with seeded random weights (models/export_torchvision.py, Debian's torch).
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import load  # noqa: E402  (Server, ensure_model, test_image)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p * (len(sorted_ms) - 1))))]


def soak(srv, path, body, ctype, n, clients):
    lock = threading.Lock()
    done = [0]
    lat = [None] * n
    errors = {}
    rss = []

    def client():
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
        while True:
            with lock:
                i = done[0]
                if i >= n:
                    break
                done[0] += 1
            t0 = time.perf_counter()
            try:
                c.request("POST", path, body, {"Content-Type": ctype})
                r = c.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException) as e:
                st = type(e).__name__
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
            lat[i] = (time.perf_counter() - t0) * 1e3
            if st != 200:
                with lock:
                    errors[st] = errors.get(st, 0) + 1
        c.close()

    def sampler():
        while done[0] < n:
            rss.append((done[0], rss_kb(srv.proc.pid)))
            time.sleep(0.5)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    s = threading.Thread(target=sampler)
    s.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.join()
    wall = time.perf_counter() - t0
    rss.append((n, rss_kb(srv.proc.pid)))
    print(f"soak: {n} requests, {clients} clients, {wall:.1f} s, {n / wall:.1f} req/s, "
          f"errors {errors or 0}")
    print(f"{'tenth':>6} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}")
    for k in range(10):
        part = sorted(x for x in lat[k * n // 10:(k + 1) * n // 10] if x is not None)
        kb = [v for i, v in rss if k * n // 10 <= i < (k + 1) * n // 10]
        if part:
            print(f"{k + 1:>6} {pct(part, 0.5):>8.1f} {pct(part, 0.99):>8.1f} "
                  f"{(max(kb) / 1024 if kb else 0):>8.1f}")
    all_ms = sorted(x for x in lat if x is not None)
    print(f"overall p50 {pct(all_ms, 0.5):.1f} ms, p99 {pct(all_ms, 0.99):.1f} ms")
    after = [kb for i, kb in rss if i >= n // 10]
    if after:
        lo, hi = min(after), max(after)
        print(f"RSS after warm-up: min {lo / 1024:.1f} MiB, max {hi / 1024:.1f} MiB, "
              f"spread {100.0 * (hi - lo) / lo:.2f} % ({'flat' if hi <= lo * 1.05 else 'NOT flat'}"
              f" within 5 %); {len(rss)} samples; first {rss[0][1] / 1024:.1f} MiB")
    return errors


def overload_c(client, srv, path, body, ctype, clients, seconds):
    """The same load from the C client (one blocked thread per connection, no interpreter lock)."""
    with tempfile.NamedTemporaryFile(prefix="camd-overload-", suffix=".body") as f:
        f.write(body)
        f.flush()
        subprocess.run([client, "--port", str(srv.port), "--path", path, "--body", f.name,
                        "--content-type", ctype, "--clients", str(clients),
                        "--seconds", str(seconds)], check=True)


def overload(camd, cfg, path, body, ctype, clients, seconds, c_client):
    srv = load.Server(camd, cfg, ["--workers", "1", "--queue-length", "2", "--max-batch", "1",
                                  "--retry-after-s", "1", "--max-connections-per-ip", "0"])
    if c_client:
        try:
            overload_c(c_client, srv, path, body, ctype, clients, seconds)
        finally:
            srv.stop()
        return
    busy, ok, other, no_retry = [], [0], {}, [0]
    lock = threading.Lock()
    stop = time.time() + seconds

    def client():
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        while time.time() < stop:
            t0 = time.perf_counter()
            try:
                c.request("POST", path, body, {"Content-Type": ctype})
                r = c.getresponse()
                r.read()
            except (OSError, http.client.HTTPException):
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
                continue
            dt = (time.perf_counter() - t0) * 1e3
            with lock:
                if r.status == 503:
                    busy.append(dt)
                    if not r.getheader("Retry-After"):
                        no_retry[0] += 1
                elif r.status == 200:
                    ok[0] += 1
                else:
                    other[r.status] = other.get(r.status, 0) + 1
        c.close()

    try:
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        srv.stop()
    busy.sort()
    if busy:
        print(f"overload: {clients} clients for {seconds} s on 1 worker, queue_length 2: "
              f"{ok[0]} answered 200, {len(busy)} answered 503 (p50 {pct(busy, 0.5):.2f} ms, "
              f"p99 {pct(busy, 0.99):.2f} ms, max {busy[-1]:.2f} ms; "
              f"{sum(1 for x in busy if x < 10)} of {len(busy)} under 10 ms), "
              f"{no_retry[0]} without Retry-After, other {other or 0}")
    else:
        print(f"overload: no 503 ({ok[0]} answered 200): raise --overload-clients")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camd", default=os.path.join(ROOT, "build", "camd"))
    ap.add_argument("--model", default="resnet50", help="torchvision name, or 'default'")
    ap.add_argument("--model-dir", default="/tmp/camd-bench-models")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overload-clients", type=int, default=32)
    ap.add_argument("--overload-seconds", type=float, default=5)
    ap.add_argument("--skip-soak", action="store_true")
    ap.add_argument("--skip-overload", action="store_true")
    ap.add_argument("--client", choices=["c", "python"], default="c",
                    help="overload client: the C one (BUILD/tests/overload_client, built with the "
                         "tests) or Python threads")
    args = ap.parse_args()
    if args.model == "default":
        with open(os.path.join(ROOT, "config", "camd.json")) as f:
            base = json.load(f)
        model = next(m for m in base["models"] if m["name"] == base["default_model"])
        model["path"] = os.path.normpath(os.path.join(ROOT, "config", model["path"]))
        if model.get("labels"):
            model["labels"] = os.path.normpath(os.path.join(ROOT, "config", model["labels"]))
        name = model["name"]
    else:
        with open(load.ensure_model(args.model_dir, args.model)) as f:
            model = json.load(f)
        name = model["name"] = args.model
    os.makedirs(args.model_dir, exist_ok=True)
    cfg = os.path.join(args.model_dir, f"soak-{name}.camd.json")
    with open(cfg, "w") as f:
        json.dump({"models": [model], "queue_length": 1024}, f)
    body, ctype = load.test_image()
    path = f"/v1/models/{name}/explain?outputs=overlay,bbox"
    print(f"camd {args.camd}, model {name}, {os.cpu_count()} cores, image 400x300 JPEG, {path}")
    if not args.skip_soak:
        srv = load.Server(args.camd, cfg, ["--workers", str(args.workers)])
        try:
            soak(srv, path, body, ctype, args.requests, args.clients)
        finally:
            srv.stop()
    if not args.skip_overload:
        c_client = None
        if args.client == "c":
            c_client = os.path.join(os.path.dirname(os.path.abspath(args.camd)), "tests",
                                    "overload_client")
            if not os.access(c_client, os.X_OK):
                sys.exit(f"{c_client} not built: cmake --build BUILD --target overload_client, "
                         "or --client python")
        overload(args.camd, cfg, path, body, ctype, args.overload_clients, args.overload_seconds,
                 c_client)


if __name__ == "__main__":
    main()
