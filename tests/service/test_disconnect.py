#!/usr/bin/python3
"""A client that disconnects while its job waits in the queue: the job is dropped, not run.

Usage: test_disconnect.py CAMD FIXTURES

One worker, batches of one. A slow job (an explanation of a 7000x5000 image with its overlay,
the PNG encode at full size dominates) occupies the worker; five requests are then sent on raw
sockets, and once /metrics shows them queued (camd_queue_depth 5) the sockets are closed. A sixth
raw-socket request stays connected. After the slow job: camd_jobs_dropped_total{reason=
"client_gone"} is 5, camd_batch_size_count grew by exactly 2 (the slow job and the one that
stayed), the one that stayed got its 200, and the access log marks the five "dropped". Only
bounded waits: no timing assertion (if the slow job were to finish before the five are queued,
the test says so and fails, it does not guess).
"""
import io
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import camdtest as ct  # noqa: E402

DROPPED = 'camd_jobs_dropped_total{reason="client_gone"}'

try:
    from PIL import Image
except ImportError:
    print("SKIPPED: PIL missing")
    sys.exit(77)

ct.init()
c = ct.Checker()
buf = io.BytesIO()
Image.new("RGB", (7000, 5000), (90, 140, 200)).save(buf, "PNG")
big = buf.getvalue()
small = ct.fixture("small.png")


def metric(s, name):
    _, _, data = s.request("GET", "/metrics")
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", data.decode(), re.M)
    return float(m.group(1)) if m else None


def raw_request(port, body):
    sk = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /v1/models/tiny/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sk.sendall(head + body)
    return sk


def wait_for(pred, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


with ct.Server("--workers", "1", "--max-batch", "1", "--queue-length", "16",
               "--max-body-bytes", "33554432") as s:
    batches0 = metric(s, "camd_batch_size_count") or 0
    slow = {}

    def run_slow():
        slow["answer"] = s.request("POST", "/v1/models/tiny/explain?outputs=overlay", big,
                                   {"Content-Type": "image/png"}, timeout=300)

    t = threading.Thread(target=run_slow)
    t.start()
    # The slow job is running once the queue is empty and a request is in flight beyond /metrics.
    c.check(wait_for(lambda: metric(s, "camd_inflight_requests") >= 2 and
                     metric(s, "camd_queue_depth") == 0), "the slow job started")
    gone = [raw_request(s.port, small) for _ in range(5)]
    stays = raw_request(s.port, small)
    queued = wait_for(lambda: metric(s, "camd_queue_depth") == 6)
    c.check(queued and t.is_alive(), "six jobs queued behind the slow one (else the machine was "
            "too fast for this test's slow job)")
    for sk in gone:
        sk.close()
    t.join(300)
    st = slow.get("answer", (None,))[0]
    c.check(st == 200, f"the slow job answered {st}")
    data = b""
    stays.settimeout(60)
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10:
        chunk = stays.recv(65536)
        if not chunk:
            break
        data += chunk
    stays.close()
    c.check(data.startswith(b"HTTP/1.1 200"), f"the client that stayed: {data[:80]!r}")
    c.check(wait_for(lambda: metric(s, DROPPED) == 5, 30), f"dropped jobs: {metric(s, DROPPED)}")
    batches = metric(s, "camd_batch_size_count") - batches0
    c.check(batches == 2, f"engine runs: {batches} (expected 2: the slow job and the one that stayed)")
    c.check(wait_for(lambda: s.text().count('"dropped":"client_gone"') == 5, 30),
            "the access log marks the five dropped requests")
    print(f"dropped {metric(s, DROPPED):.0f} of 5 "
          f"abandoned jobs; engine runs {batches:.0f}")
    c.check(s.stop() == 0, "clean stop")
c.done("service.disconnect")
