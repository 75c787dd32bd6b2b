# Service-test helpers: start the real camd binary on 127.0.0.1 (free port), talk HTTP to it.
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

FIX = None  # fixtures directory (set by init)
CAMD = None


def init():
    """Reads CAMD and FIXTURES from argv/env: test.py CAMD FIXTURES [args...]."""
    global FIX, CAMD
    CAMD, FIX = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(FIX, "tiny.onnx")):
        print(f"fixtures missing in {FIX}", file=sys.stderr)
        sys.exit(77)
    return sys.argv[3:]


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


class Server:
    def __init__(self, *args, env=None, config=None, timeout=30):
        self.log_path = tempfile.mktemp(prefix="camd-svc-", suffix=".log")
        self.log = open(self.log_path, "wb")
        cfg = config or os.path.join(FIX, "camd.json")
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("CAMD_"):
                del e[k]
        e.update(env or {})
        cmd = [CAMD, "serve", "--config", cfg, "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        self.port = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.text()
            m = re.search(r"listening on https?://127\.0\.0\.1:(\d+)/", text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"camd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        if not self.port:
            self.proc.kill()
            raise RuntimeError("camd did not start:\n" + self.text())

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, timeout=60):
        c = conn or self.conn(timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def json(self, method, path, body=None, headers=None, **kw):
        st, h, data = self.request(method, path, body, headers, **kw)
        try:
            return st, h, json.loads(data) if data else None
        except ValueError:
            raise AssertionError(f"{method} {path}: not JSON ({st}): {data[:200]!r}")

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("camd did not exit after SIGTERM within %ss" % timeout)
        self.log.close()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if exc[0] is None:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        else:
            print("---- camd log (tail) ----\n" + self.text()[-4000:], file=sys.stderr)


def multipart(fields, files):
    """fields: {name: value}; files: {name: (filename, bytes, ctype)} → (body, content-type)."""
    b = "----camdtestboundary7d93"
    out = []
    for k, v in fields.items():
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    for k, (fn, data, ct) in files.items():
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{fn}\"\r\n"
                   f"Content-Type: {ct}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


def strip_volatile(obj):
    """Removes timings and request ids so two answers to the same request compare equal."""
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items() if k not in ("timings_ms", "request_id")}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


class Checker:
    def __init__(self):
        self.failures = 0
        self.count = 0

    def check(self, cond, what):
        self.count += 1
        if not cond:
            self.failures += 1
            print(f"FAIL: {what}", file=sys.stderr)
        return cond

    def error(self, st, h, body, status, code=None, contains=None, what=""):
        ok = st == status and isinstance(body, dict) and "error" in body
        if ok:
            e = body["error"]
            ok = e.get("status") == status and isinstance(e.get("message"), str)
            if code is not None:
                ok = ok and e.get("code") == code
            if contains is not None:
                ok = ok and contains in e.get("message", "")
        ok = ok and h.get("content-type", "").startswith("application/json")
        return self.check(ok, f"{what}: expected {status} {code or ''} {contains or ''}, got {st} {body}")

    def done(self, name):
        print(f"{name}: {self.count - self.failures}/{self.count} checks passed")
        sys.exit(1 if self.failures else 0)
