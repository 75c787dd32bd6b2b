#!/usr/bin/python3
# HTTP raw-bytes fuzzer against a live camd on 127.0.0.1 (a campaign script, not in the suite).
"""Mutates valid requests (request line, headers, chunked bodies, multipart boundaries, JSON
bodies) and sends the bytes over raw sockets (--parallel at once), in random pieces, to the real `camd serve`
(preferably the ASan build). Checks: the server answers /healthz throughout; every answer camd
writes itself (it has X-Request-Id) with status >= 400 is a JSON error; at the end SIGTERM exits 0
with no sanitizer report. Bounded by --cases and --seconds. Prints the figures.

  /usr/bin/python3 tests/fuzz/http_fuzz.py --camd build-asan/camd --fixtures build/service-fixtures
       [--cases 5000] [--seconds 600] [--seed 1]
"""
import argparse
import base64
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "service"))


def seeds(png):
    b64 = base64.b64encode(png)
    bd = b"----fuzzbd7"
    form = (b"--" + bd + b"\r\nContent-Disposition: form-data; name=\"method\"\r\n\r\ngradcam\r\n--"
            + bd + b"\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--" + bd + b"--\r\n")
    js = b'{"image": "' + b64 + b'", "topk": 2, "outputs": "bbox"}'
    chunked = b"".join(b"%x\r\n" % len(png[i:i + 100]) + png[i:i + 100] + b"\r\n"
                       for i in range(0, len(png), 100)) + b"0\r\n\r\n"

    def post(path, ctype, body, extra=b""):
        return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + ctype +
                b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)

    return [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
        b"OPTIONS /v1/models/tiny/explain HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\n"
        b"Access-Control-Request-Method: POST\r\n\r\n",
        post(b"/v1/models/tiny/predict?topk=3", b"image/png", png),
        post(b"/v1/models/tiny/explain", b"multipart/form-data; boundary=" + bd, form),
        post(b"/v1/models/tiny:explain", b"application/json", js),
        post(b"/v1/explain", b"application/json", b'{"instances": [{"image": "' + b64 + b'"}]}'),
        b"POST /v1/models/tiny/explain HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked,
    ]


TOKENS = [b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b"\0", b"%", b"%00", b"%zz", b"..", b"/../",
          b"chunked", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 0\r\n",
          b"Content-Length: 99999999999999999999\r\n", b"Content-Length: -1\r\n", b"FFFFFFFFFFFFFFFFF",
          b"0\r\n\r\n", b"--", b"boundary=", b"\xff\xfe", b"{", b"}", b'"', b"\\u0000", b"[",
          b"HTTP/1.0", b"HTTP/1.1", b"HTTP/9.9", b"Expect: 100-continue\r\n", b"Connection: close\r\n",
          b"Authorization: Bearer x\r\n", b"Accept: image/png\r\n", b"?topk=99999&target=-1&method=",
          b"A" * 5000, b"=" * 300]


def mutate(rng, data, pool):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(8)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:  # insert a token
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and data:  # delete a range
            data[pos:pos + rng.randint(1, 64)] = b""
        elif op == 3:  # duplicate a range
            end = min(len(data), pos + rng.randint(1, 200))
            data[pos:pos] = data[pos:end]
        elif op == 4:  # splice another seed
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            data[pos:] = other[cut:]
        elif op == 5:  # CRLF -> LF somewhere
            data = bytearray(data.replace(b"\r\n", b"\n", 1) if rng.random() < 0.5
                             else data.replace(b"\r\n", b"\r\n\r\n", 1))
        elif op == 6:  # a number in the text changed
            m = list(re.finditer(rb"\d+", bytes(data)))
            if m:
                g = rng.choice(m)
                data[g.start():g.end()] = str(rng.choice([0, 1, 7, 65535, 2**31, 2**63, 10**30,
                                                          rng.randrange(10**6)])).encode()
        else:  # truncate
            data = data[:pos]
    return bytes(data)


def send(port, data, rng, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        i = 0
        while i < len(data):  # random pieces
            n = rng.choice([1, 7, 64, 1000, len(data)])
            s.sendall(data[i:i + n])
            i += n
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    except socket.timeout:
        return None
    except OSError:
        return b""
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camd", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=16, help="connections at once")
    args = ap.parse_args()
    png = open(os.path.join(args.fixtures, "small.png"), "rb").read()
    pool = seeds(png)
    log = tempfile.NamedTemporaryFile(prefix="camd-httpfuzz-", suffix=".log", delete=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMD_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    proc = subprocess.Popen([args.camd, "serve", "--config", os.path.join(args.fixtures, "camd.json"),
                             "--port", "0", "--log-level", "warn", "--request-timeout-s", "3",
                             "--cors-origins", "*", "--max-connections-per-ip", "0"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    port = None
    deadline = time.time() + 60
    while time.time() < deadline and not port:
        time.sleep(0.1)
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                link = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", link)
            if not m:
                continue
            for line in open("/proc/net/tcp").readlines()[1:]:
                p = line.split()
                if p[3] == "0A" and p[9] == m.group(1):
                    port = int(p[1].split(":")[1], 16)
    if not port:
        sys.exit("camd did not start:\n" + open(log.name).read())
    import threading
    lock = threading.Lock()
    stats, bad, five, t0 = {}, [], [], time.time()
    counter = [0]
    down = []

    def worker(wid):
        rng = random.Random(args.seed * 1000 + wid)
        while not down:
            with lock:
                if counter[0] >= args.cases or time.time() - t0 >= args.seconds:
                    return
                counter[0] += 1
                n = counter[0]
            data = mutate(rng, rng.choice(pool), pool) if rng.random() < 0.95 else rng.choice(pool)
            out = send(port, data, rng)
            if out is None:
                key = "timeout"
            elif not out:
                key = "closed"
            else:
                line = out.split(b"\r\n", 1)[0]
                key = line[:12].decode("latin1")
                head, _, body = out.partition(b"\r\n\r\n")
                st = int(line[9:12]) if line[9:12].isdigit() else 0
                if b"X-Request-Id" in head and st >= 400:
                    try:
                        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                        e = json.loads(body[:int(m.group(1))] if m else body)["error"]
                        assert e["status"] == st and e["code"]
                    except Exception:  # noqa: BLE001
                        with lock:
                            bad.append((data[:200], out[:300]))
                if st >= 500 and st != 503 and st != 505:
                    with lock:
                        five.append((data[:300], out[:400]))
            with lock:
                stats[key] = stats.get(key, 0) + 1
            if n % 200 == 0 or proc.poll() is not None:
                alive = send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", rng)
                if proc.poll() is not None or not alive or b" 200 " not in alive.split(b"\r\n")[0]:
                    print(f"server down after case {n}: last input {data[:300]!r}")
                    down.append(n)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = counter[0]
    wall = time.time() - t0
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed (no exit within 60 s)"
    text = open(log.name, errors="replace").read()
    san = [ln for ln in text.splitlines() if "Sanitizer" in ln or "runtime error" in ln]
    print(f"http_fuzz: {n} cases in {wall:.0f} s ({n / wall:.0f}/s), seed {args.seed}")
    for k in sorted(stats, key=lambda k: -stats[k]):
        print(f"  {stats[k]:>6}  {k}")
    print(f"camd answers >= 400 that are not a JSON error: {len(bad)}")
    for d, o in bad[:5]:
        print("   input", d, "\n   output", o)
    print(f"5xx answers other than 503/505: {len(five)}")
    for d, o in five[:5]:
        print("   input", d, "\n   output", o)
    print(f"exit status after SIGTERM: {rc}; sanitizer reports: {len(san)}")
    for ln in san[:10]:
        print("  ", ln)
    ok = rc == 0 and not san and not bad and not down
    os.unlink(log.name) if ok else print("log kept:", log.name)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
