#!/usr/bin/python3
"""API keys with scopes and their rotation on SIGHUP, against the real `camd serve`.

Usage: test_keys.py CAMD FIXTURES

Keys: api_keys gives "inline-key-01:predict+explain"; api_keys_file gives one key per scope
(predict, explain, metrics) and one without scopes (= admin). Checks 401 (no key, unknown key;
WWW-Authenticate sent) versus 403 (a valid key without the route's scope), what each scope
opens, that GET /v1/models needs only a valid key and /healthz none; then the file is rewritten
(a key replaced) and SIGHUP makes the new key valid and the old one 401 without a restart; a
file with an unknown scope keeps the previous keys; an unknown scope in api_keys is a startup
error.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import camdtest as ct  # noqa: E402

ct.init()
c = ct.Checker()
d = tempfile.mkdtemp(prefix="camd-keys-")
keyfile = os.path.join(d, "keys.txt")


def write_keys(lines):
    with open(keyfile + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(keyfile + ".tmp", keyfile)  # what a Secret volume update does (atomic swap)


write_keys(["# one key per line: KEY or KEY:scope+scope", "pred-key-0001:predict",
            "expl-key-0001:explain", "metr-key-0001:metrics", "admin-key-001"])
img = ct.fixture("small.png")


def call(s, route, key=None):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    if route == "predict":
        return s.json("POST", "/v1/models/tiny/predict", img, dict(h, **{"Content-Type": "image/png"}))
    if route == "explain":
        return s.json("POST", "/v1/models/tiny/explain?outputs=bbox", img,
                      dict(h, **{"Content-Type": "image/png"}))
    if route == "metrics":
        st, hd, data = s.request("GET", "/metrics", headers=h)
        return st, hd, data
    if route == "models":
        return s.json("GET", "/v1/models", headers=h)
    return s.json("GET", "/healthz", headers=h)


def wait_log(s, text, count):
    deadline = time.time() + 20
    while time.time() < deadline and s.text().count(text) < count:
        time.sleep(0.05)
    return s.text().count(text) >= count


with ct.Server("--api-keys", "inline-key-01:predict+explain", "--api-keys-file", keyfile) as s:
    for route in ("predict", "explain", "metrics", "models"):
        st, h, body = call(s, route)
        c.check(st == 401 and h.get("www-authenticate", "").startswith("Bearer"),
                f"{route} without a key: {st}")
        st, h, body = call(s, route, "no-such-key")
        c.check(st == 401, f"{route} with an unknown key: {st}")
    st, h, body = call(s, "predict", "pred-key-0001")
    c.check(st == 200, f"predict key on predict: {st}")
    st, h, body = call(s, "explain", "pred-key-0001")
    c.error(st, h, body, 403, "forbidden", "'explain' scope", "predict key on explain")
    st, h, body = call(s, "metrics", "pred-key-0001")
    c.check(st == 403, f"predict key on /metrics: {st}")
    st, h, body = call(s, "explain", "expl-key-0001")
    c.check(st == 200 and "explanations" in body, f"explain key on explain: {st}")
    st, h, body = call(s, "predict", "expl-key-0001")
    c.error(st, h, body, 403, "forbidden", "'predict' scope", "explain key on predict")
    st, h, body = call(s, "metrics", "metr-key-0001")
    c.check(st == 200 and b"camd_requests_total" in body, f"metrics key on /metrics: {st}")
    st, h, body = call(s, "explain", "metr-key-0001")
    c.check(st == 403, f"metrics key on explain: {st}")
    for route in ("predict", "explain", "metrics", "models"):
        st, h, body = call(s, route, "admin-key-001")
        c.check(st == 200, f"admin key on {route}: {st}")
        st, h, body = call(s, route, "metr-key-0001" if route == "models" else None)
    st, h, body = call(s, "models", "pred-key-0001")
    c.check(st == 200, f"any valid key on GET /v1/models: {st}")
    st, h, body = call(s, "health")
    c.check(st == 200, f"/healthz without a key: {st}")
    for route, want in (("predict", 200), ("explain", 200), ("metrics", 403)):
        st, h, body = call(s, route, "inline-key-01")
        c.check(st == want, f"inline key (predict+explain) on {route}: {st}, expected {want}")

    # rotation
    write_keys(["pred-key-0002:predict", "expl-key-0001:explain", "admin-key-001"])
    pid = s.proc.pid
    s.proc.send_signal(signal.SIGHUP)
    c.check(wait_log(s, "API key(s) loaded", 1), "SIGHUP: keys reloaded (logged)")
    st, _, _ = call(s, "predict", "pred-key-0001")
    c.check(st == 401, f"the removed key after SIGHUP: {st}")
    st, _, _ = call(s, "predict", "pred-key-0002")
    c.check(st == 200, f"the new key after SIGHUP: {st}")
    st, _, _ = call(s, "metrics", "metr-key-0001")
    c.check(st == 401, f"the dropped metrics key after SIGHUP: {st}")
    st, _, _ = call(s, "predict", "inline-key-01")
    c.check(st == 200, f"the inline key survives the reload: {st}")
    c.check(s.proc.pid == pid and s.proc.poll() is None, "same process")

    write_keys(["pred-key-0003:predikt"])
    s.proc.send_signal(signal.SIGHUP)
    c.check(wait_log(s, "API keys not reloaded", 1), "a bad file is refused (logged)")
    st, _, _ = call(s, "predict", "pred-key-0002")
    c.check(st == 200, f"the previous keys stay after a bad file: {st}")
    st, _, _ = call(s, "predict", "pred-key-0003")
    c.check(st == 401, f"a key of the refused file: {st}")

    write_keys(["# nothing"])  # the inline key remains: authentication stays on
    s.proc.send_signal(signal.SIGHUP)
    c.check(wait_log(s, "API key(s) loaded", 2), "an empty key file with an inline key loads")
    st, _, _ = call(s, "predict", "pred-key-0002")
    c.check(st == 401, f"keys of the emptied file are gone: {st}")
    st, _, _ = call(s, "predict", "inline-key-01")
    c.check(st == 200, f"the inline key stays: {st}")
    c.check(s.stop() == 0, "clean stop")

r = subprocess.run([ct.CAMD, "serve", "--config", os.path.join(ct.FIX, "camd.json"), "--port", "0",
                    "--api-keys", "abcdefgh:metrix"], capture_output=True, timeout=60)
err = r.stderr.decode()
c.check(r.returncode == 2 and "metrix" in err and "scope" in err, f"bad scope: {r.returncode} {err}")
c.done("service.keys")
