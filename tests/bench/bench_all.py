#!/usr/bin/python3
# Benchmark (not a test): every speed figure of camd against ONNX Runtime and PyTorch, in one run.
"""Prints, in one run on this machine, markdown tables of:

 1. forward latency (batch 1, median of --runs after 3 warm-ups): camd (`camd bench`) vs ONNX
    Runtime (node onnxruntime-node, tests/bench/ort_bench.js) vs PyTorch (no_grad, Debian's
    torch) on resnet50, mobilenet_v2, vgg16, densenet121, efficientnet_b0 at 1 and 2 threads;
 2. one explain request end to end (400x300 JPEG, gradcam, overlay PNG + JSON): `camd explain`
    (process wall time and the in-process total) and `POST /explain` measured by an HTTP client
    (1 worker x N threads), against ORT's bare forward at the same threads;
 3. throughput at 1/2/8 concurrent clients: camd serve (2 workers x 1 thread, batching off) and
    the PyTorch Grad-CAM peer (tests/bench/peer_gradcam.py, 2 torch threads), same client,
    same image; then RSS of both and startup-to-ready;
 4. Score-CAM and Ablation-CAM on resnet18 (layer4, 512 channels): camd vs the peer.

Models are torchvision architectures with seeded random weights (torch.manual_seed(0)), exported
once to --work (opset 13, dynamic batch). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from
camd's environment (as on a user's machine). Run it on a quiet machine, under the team's CPU lock:

  flock -x /work/.cpu.lock /usr/bin/python3 tests/bench/bench_all.py --camd build/camd

The forward table also shows camd with oneDNN switched off (CAMD_ONEDNN=0: camd's own im2col +
OpenBLAS kernels); --rounds N alternates the three runtimes N times and reports medians.

Requirements: Debian's python3-torch, python3-torchvision, python3-pil, python3-numpy; node + npm
(onnxruntime-node is installed into tests/bench/node_modules with npm install --ignore-scripts).
"""
import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["resnet50", "mobilenet_v2", "vgg16", "densenet121", "efficientnet_b0"]
ENV = {k: v for k, v in os.environ.items()
       if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "CAMD_BLAS_AUTOTUNE", "CAMD_THREADS")}
PY = "/usr/bin/python3"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def export(work, name):
    path = os.path.join(work, name + ".onnx")
    if not os.path.exists(path):
        log(f"exporting {name}")
        code = f"""
import torch, torchvision
torch.manual_seed(0)
m = torchvision.models.{name}(weights=None).eval()
torch.onnx.export(m, torch.zeros(1, 3, 224, 224), {path!r}, opset_version=13, input_names=["input"],
                  output_names=["logits"], dynamic_axes={{"input": {{0: "b"}}, "logits": {{0: "b"}}}})
"""
        subprocess.run([PY, "-c", code], check=True, capture_output=True)
    return path


def camd_fwd(camd, path, threads, runs, onednn=True):
    env = dict(ENV, CAMD_ONEDNN="1" if onednn else "0")
    out = subprocess.run([camd, "bench", path, "--threads", str(threads), "--runs", str(runs)],
                         capture_output=True, text=True, env=env, timeout=1200)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)["forward_ms_median"]
    raise SystemExit("camd bench: " + out.stderr[-400:])


def ort_ready():
    nm = os.path.join(HERE, "node_modules")
    if not os.path.isdir(os.path.join(nm, "onnxruntime-node")):
        log("installing onnxruntime-node (npm install --ignore-scripts)")
        subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=HERE,
                       capture_output=True)
    return os.path.isdir(os.path.join(nm, "onnxruntime-node"))


def ort_fwd(path, threads, runs):
    out = subprocess.run(["node", os.path.join(HERE, "ort_bench.js"), path, "--threads",
                          str(threads), "--runs", str(runs)], capture_output=True, text=True,
                         env=dict(os.environ, NODE_PATH=os.path.join(HERE, "node_modules")),
                         timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])["forward_ms_median"]


def torch_fwd(name, threads, runs):
    code = f"""
import statistics, time, torch, torchvision
torch.set_num_threads({threads})
torch.manual_seed(0)
m = torchvision.models.{name}(weights=None).eval()
x = torch.randn(1, 3, 224, 224)
t = []
with torch.no_grad():
    for i in range(3 + {runs}):
        t0 = time.perf_counter(); m(x); t.append((time.perf_counter() - t0) * 1e3)
print(statistics.median(t[3:]))
"""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=1200)
    return float(out.stdout.strip().splitlines()[-1])


def jpeg_400x300():
    from PIL import Image
    src = "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"
    img = Image.open(src).convert("RGB") if os.path.exists(src) else Image.new("RGB", (451, 300))
    buf = io.BytesIO()
    img.resize((400, 300)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def camd_config(work, path, name):
    cfg = os.path.join(work, f"{name}.camd.json")
    json.dump({"models": [{"name": "m", "path": path, "width": 224, "height": 224,
                           "resize": "shorter", "resize_shorter": 232, "scale": 1 / 255,
                           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                           "activation": "softmax"}], "queue_length": 1024}, open(cfg, "w"))
    return cfg


class Server:
    """A server process (camd serve or the peer) on a free loopback port, timed to /readyz."""

    def __init__(self, argv, env=None):
        self.port = free_port()
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{argv[0]} exited with {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.005)
        self.ready_ms = (time.perf_counter() - t0) * 1e3

    def cpu_ms(self):
        """CPU time (user + system of the whole process, exited threads included) the server has
        used so far: per-request CPU cost is robust to other load on a shared machine."""
        f = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def rss_mib(self):
        st = open(f"/proc/{self.proc.pid}/status").read().splitlines()
        get = lambda k: int(next(l for l in st if l.startswith(k)).split()[1]) / 1024
        return get("VmRSS"), get("VmHWM")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)


def post(port, path, body, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", path, body, {"Content-Type": "image/jpeg"})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit(f"POST {path}: {r.status} {data[:300]!r}")
    return (time.perf_counter() - t0) * 1e3, data


def latency(port, path, body, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for _ in range(3):
        post(port, path, body, c)
    return statistics.median(post(port, path, body, c)[0] for _ in range(n))


def load(port, path, body, conc, n):
    lat, lock, count = [], threading.Lock(), [0]

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if count[0] >= n:
                    return
                count[0] += 1
            ms, _ = post(port, path, body, c)
            with lock:
                lat.append(ms)

    ts = [threading.Thread(target=client) for _ in range(conc)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return n / wall, lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1) + 0.5))]


def table(title, cmd, head, rows):
    print(f"\n### {title}\n\n`{cmd}`\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camd", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "build",
                                                   "camd"))
    ap.add_argument("--work", default="/tmp/camd-bench-all")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--requests", type=int, default=24, help="requests per concurrency level")
    ap.add_argument("--skip", default="", help="comma list of: forward,explain,load,score")
    ap.add_argument("--json", help="also write every number here")
    ap.add_argument("--rounds", type=int, default=1,
                    help="forward: alternate camd (oneDNN off / on) and ORT this many times and "
                         "report medians (a shared, noisy machine)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    camd = os.path.abspath(args.camd)
    models = args.models.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    skip = set(args.skip.split(","))
    cmdline = "flock -x /work/.cpu.lock /usr/bin/python3 tests/bench/bench_all.py " + \
        " ".join(sys.argv[1:])
    res = {"cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(":\t "),
           "cores": os.cpu_count()}
    print(f"camd {camd}; {res['cpu']}, {res['cores']} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    have_ort = ort_ready()
    ort = {}

    if "forward" not in skip:
        rows = []
        for name in models:
            path = export(args.work, name)
            for t in threads:
                log(f"forward {name} {t}t")
                cs, ns, os_ = [], [], []
                for _ in range(args.rounds):  # interleaved: the same minutes for all three
                    ns.append(camd_fwd(camd, path, t, args.runs, onednn=False))
                    cs.append(camd_fwd(camd, path, t, args.runs))
                    os_.append(ort_fwd(path, t, args.runs) if have_ort else float("nan"))
                c, n, o = (statistics.median(v) for v in (cs, ns, os_))
                p = torch_fwd(name, t, args.runs)
                ort[(name, t)] = o
                res[f"forward/{name}/{t}"] = {"camd": c, "camd_no_onednn": n, "ort": o, "torch": p,
                                              "rounds": {"camd": cs, "camd_no_onednn": ns,
                                                         "ort": os_}}
                rows.append([name, str(t), f"{c:.1f}", f"{n:.1f}", f"{o:.1f}", f"{p:.1f}",
                             f"{c / o:.2f}", f"{n / o:.2f}", f"{c / p:.2f}"])
        table("Forward, batch 1 (ms, median)", cmdline,
              ["model", "threads", "camd", "camd without oneDNN", "ORT", "PyTorch", "camd/ORT",
               "without oneDNN/ORT", "camd/PyTorch"], rows)

    body = jpeg_400x300()
    if "explain" not in skip:
        rows = []
        for name in [m for m in ("resnet50", "mobilenet_v2") if m in models]:
            path = export(args.work, name)
            cfg = camd_config(args.work, path, name)
            img = os.path.join(args.work, "chelsea400x300.jpg")
            open(img, "wb").write(body)
            for t in threads:
                log(f"explain {name} {t}t")
                env = dict(ENV, CAMD_THREADS=str(t))
                walls, totals = [], []
                for _ in range(5):
                    t0 = time.perf_counter()
                    out = subprocess.run([camd, "explain", "--config", cfg, "--name", "m", "--image",
                                          img, "--json", "-"], capture_output=True, text=True,
                                         env=env, check=True)
                    walls.append((time.perf_counter() - t0) * 1e3)
                    totals.append(json.loads(out.stdout)["timings_ms"]["total"])
                srv = Server([camd, "serve", "--config", cfg, "--port", "{port}", "--workers", "1",
                              "--blas-threads", str(t), "--log-level", "warn"], env=ENV)
                try:
                    c0 = srv.cpu_ms()
                    http_ms = latency(srv.port, "/v1/models/m/explain", body, 20)
                    cpu_req = (srv.cpu_ms() - c0) / 23
                    _, data = post(srv.port, "/v1/models/m/explain", body)
                    stages = json.loads(data)["timings_ms"]
                finally:
                    srv.stop()
                o = ort.get((name, t)) or (ort_fwd(path, t, args.runs) if have_ort else float("nan"))
                res[f"explain/{name}/{t}"] = {"cli_wall": statistics.median(walls),
                                              "cli_total": statistics.median(totals),
                                              "http": http_ms, "stages": stages, "ort": o,
                                              "server_cpu_ms_per_request": cpu_req}
                st = " / ".join(f"{stages.get(k, 0):.1f}" for k in
                                ("decode", "preprocess", "forward", "backward", "cam", "render"))
                rows.append([name, str(t), f"{statistics.median(walls):.0f}",
                             f"{statistics.median(totals):.1f}", f"{http_ms:.1f}",
                             f"{cpu_req:.1f}", st, f"{o:.1f}", f"{http_ms / o:.2f}"])
        table("One explain request (400x300 JPEG, gradcam, overlay PNG + JSON; ms)", cmdline,
              ["model", "threads", "CLI process wall", "CLI in-process total",
               "HTTP client (1 worker)", "server CPU per request",
               "stages decode/pre/fwd/bwd/cam/render",
               "ORT bare forward", "HTTP/ORT"], rows)

    if "load" not in skip and "resnet50" in models:
        path = export(args.work, "resnet50")
        cfg = camd_config(args.work, path, "resnet50")
        rows, mem = [], []
        servers = [("camd (2 workers x 1 thread)",
                    [camd, "serve", "--config", cfg, "--port", "{port}", "--workers", "2",
                     "--blas-threads", "1", "--max-batch", "1", "--log-level", "warn"],
                    "/v1/models/m/explain", ENV),
                   ("PyTorch peer (2 threads)",
                    [PY, os.path.join(HERE, "peer_gradcam.py"), "--model", "resnet50", "--port",
                     "{port}", "--threads", "2"], "/explain", None)]
        for label, argv, route, env in servers:
            log(f"load {label}")
            srv = Server(argv, env=env)
            try:
                for _ in range(3):  # warm-up (PyTorch's first backward passes are slow)
                    post(srv.port, route, body)
                for conc in (1, 2, 8):
                    c0 = srv.cpu_ms()
                    rps, p50, p99 = load(srv.port, route, body, conc, args.requests)
                    cpu = (srv.cpu_ms() - c0) / args.requests
                    res[f"load/{label}/{conc}"] = {"rps": rps, "p50": p50, "p99": p99, "cpu": cpu}
                    rows.append([label, str(conc), f"{rps:.2f}", f"{p50:.0f}", f"{p99:.0f}",
                                 f"{cpu:.0f}"])
                rss, hwm = srv.rss_mib()
                mem.append([label, f"{srv.ready_ms:.0f}", f"{rss:.0f}", f"{hwm:.0f}"])
                res[f"server/{label}"] = {"ready_ms": srv.ready_ms, "rss_mib": rss, "hwm_mib": hwm}
            finally:
                srv.stop()
        table("Throughput, resnet50 gradcam explain, 400x300 JPEG (same client)", cmdline,
              ["server", "clients", "req/s", "p50 ms", "p99 ms", "CPU ms per request"], rows)
        table("Servers: startup to /readyz 200, memory after the load (resnet50, weights 97.5 MiB)",
              cmdline, ["server", "ready ms", "RSS MiB", "peak RSS MiB"], mem)

    if "score" not in skip:
        path = export(args.work, "resnet18")
        cfg = camd_config(args.work, path, "resnet18")
        rows = []
        camd_srv = Server([camd, "serve", "--config", cfg, "--port", "{port}", "--workers", "1",
                           "--blas-threads", "2", "--max-batch", "16", "--log-level", "warn"],
                          env=ENV)
        peer = Server([PY, os.path.join(HERE, "peer_gradcam.py"), "--model", "resnet18", "--port",
                       "{port}", "--threads", "2"])
        try:
            for method in ("scorecam", "ablationcam"):
                log(f"{method}")
                c = min(post(camd_srv.port, f"/v1/models/m/explain?method={method}", body)[0]
                        for _ in range(2))
                p = min(post(peer.port, f"/explain?method={method}", body)[0] for _ in range(2))
                res[f"{method}/resnet18"] = {"camd": c, "peer": p}
                rows.append([method, f"{c:.0f}", f"{p:.0f}", f"{p / c:.1f}"])
        finally:
            camd_srv.stop()
            peer.stop()
        table("Score-CAM / Ablation-CAM, resnet18 layer4 (512 channels), one request, 2 threads (ms)",
              cmdline, ["method", "camd", "PyTorch peer", "peer/camd"], rows)
    if args.json:
        json.dump(res, open(args.json, "w"), indent=1, default=str)


if __name__ == "__main__":
    main()
