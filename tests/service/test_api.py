#!/usr/bin/python3
# Service test: every route, every body form and every error status of the real camd binary.
"""Usage: test_api.py CAMD FIXTURES. Starts camd on 127.0.0.1 (free port) several times with
different limits, drives it with http.client and raw sockets, and stops it with SIGTERM."""
import base64
import json
import re
import math
import os
import socket
import time
import urllib.parse

import camdtest as ct
from camdtest import Server, fixture, multipart, strip_volatile

ct.init()
C = ct.Checker()
PNG = fixture("small.png")
JPG = fixture("small.jpg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def raw_map(srv, hdr, query, body=None):
    """(status, response, raw map values) of an explain with outputs=raw, no ReLU, no scaling."""
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?outputs=raw&relu=false&normalize=none&"
                        + query, PNG if body is None else body, hdr)
    vals = b["explanations"][0]["raw"]["values"] if st == 200 else None
    return st, b, vals


def minmax(v):
    lo, hi = min(v), max(v)
    return [(x - lo) / (hi - lo) if hi > lo else 0.0 for x in v]


def check_method_options(srv, hdr):
    """finer_alpha / finer_compare (finercam) and gamma (kpcacam): typed, bounded, echoed, and
    checked against what the formulas reduce to. FinerCAM's score with alpha = 0 is
    z_c * P / (P + 1e-9), P the compared classes' probabilities: its gradient is Grad-CAM's to
    ~1e-8, so the map must be Grad-CAM's. The RBF kernel with a tiny gamma is 1 - gamma d^2 +
    O(gamma^2): the centred kernel is 2 gamma times the centred Gram matrix, whose top
    eigenvector is Eigen-CAM's principal component, so the min-max map must be Eigen-CAM's."""
    st, b, grad = raw_map(srv, hdr, "method=gradcam&target=1")
    st0, b0, fin0 = raw_map(srv, hdr, "method=finercam&target=1&finer_alpha=0&finer_compare=2")
    st1, b1, fin1 = raw_map(srv, hdr, "method=finercam&target=1")
    ok = st == 200 and st0 == 200 and st1 == 200
    C.check(ok, f"finercam options: {st} {st0} {st1} {str(b0)[:300]}")
    if ok:
        scale = max(abs(x) for x in grad)
        d0 = max(abs(x - y) for x, y in zip(fin0, grad)) / scale
        d1 = max(abs(x - y) for x, y in zip(fin1, grad)) / scale
        C.check(d0 < 1e-4, f"finercam finer_alpha=0 = Grad-CAM: max |diff| / max = {d0:.2e}")
        C.check(d1 > 1e-2, f"finercam with alpha 1 differs from Grad-CAM: {d1:.2e}")
        o0, o1 = b0.get("options", {}), b1.get("options", {})
        C.check(o0.get("finer_alpha") == 0 and o0.get("finer_compare") == 2 and
                o0.get("gamma") == "auto" and o1.get("finer_alpha") == 1 and
                o1.get("finer_compare") == 3, f"options echoed: {o0} / {o1}")
    # typed JSON values
    body = json.dumps({"image": base64.b64encode(PNG).decode(), "finer_alpha": 0,
                       "finer_compare": 2, "target": 1})
    stj, bj, finj = raw_map(srv, {"Content-Type": "application/json"}, "method=finercam", body)
    C.check(stj == 200 and finj == fin0, f"JSON numbers finer_alpha / finer_compare: {stj} "
            f"{str(bj)[:200]}")
    st, b, eig = raw_map(srv, hdr, "method=eigencam")
    stk, bk, kp = raw_map(srv, hdr, "method=kpcacam&gamma=1e-6")
    std_, bd, kpd = raw_map(srv, hdr, "method=kpcacam")
    ok = st == 200 and stk == 200 and std_ == 200
    C.check(ok, f"kpcacam gamma: {st} {stk} {std_} {str(bk)[:300]}")
    if ok:
        d = max(abs(x - y) for x, y in zip(minmax(kp), minmax(eig)))
        C.check(d < 1e-3, f"kpcacam gamma=1e-6 = Eigen-CAM after min-max: {d:.2e}")
        gk, gd = bk.get("options", {}).get("gamma"), bd.get("options", {}).get("gamma")
        C.check(isinstance(gk, float) and abs(gk - 1e-6) < 1e-12 and gd == "auto",
                f"gamma echoed: {gk} {gd}")
    for q, needle in (("finer_alpha=101", "0..100"), ("finer_alpha=x", "0..100"),
                      ("finer_compare=10", "1..9"), ("finer_compare=0", "1..9"),
                      ("gamma=0", "1e-09..1e+06"), ("gamma=2e6", "1e-09..1e+06"),
                      ("gamma=fast", "auto")):
        st, h, b = srv.json("POST", "/v1/models/tiny/explain?method=finercam&" + q, PNG, hdr)
        C.error(st, h, b, 400, contains=needle, what=q)


def check_polycam(srv, hdr, info):
    """Poly-CAM's layer list: in forward order, its map at the first layer's resolution, one
    layer expanded to the stage ends (tiny: relu1 is at the input's 32 x 32, so only relu2
    remains), and clear 400s for an unknown layer, too many layers (short names: this server
    takes 64-byte options), a wrong order or a smoothing option."""
    names = [x["name"] for x in info["layers"]]
    relu1, relu2 = "/relu1/Relu_output_0", "/relu2/Relu_output_0"
    C.check(relu1 in names and relu2 in names, f"tiny's layers: {names}")

    def lst(*ls):
        return "%2C".join(urllib.parse.quote(n, safe="") for n in ls)

    base = "/v1/models/tiny/explain?outputs=raw&score=softmax&method="
    for m in ("polycam-plus", "polycam-minus", "polycam-plusminus"):
        st, h, b = srv.json("POST", base + m + "&layer=" + lst(relu1, relu2), PNG, hdr)
        ok = st == 200 and b["method"] == m and b["layer"] == relu1 + "," + relu2
        C.check(ok, f"{m} over relu1,relu2: {st} {str(b)[:300]}")
        if ok:
            r = b["explanations"][0]["raw"]
            C.check(r["width"] == 32 and r["height"] == 32 and max(r["values"]) > 0,
                    f"{m}: the map at relu1's 32 x 32, not all zero: {r['width']} {r['height']}")
    st, h, b = srv.json("POST", base + "polycam-plus", PNG, hdr)
    C.check(st == 200 and b["layer"] == relu2 and
            b["explanations"][0]["raw"]["width"] == 16,
            f"polycam without layer: the stage ends up to the default layer: {st} {str(b)[:300]}")
    st, h, b = srv.json("POST", base + "polycam-plus&layer=" + lst(relu2, relu1), PNG, hdr)
    C.error(st, h, b, 400, contains="forward order", what="polycam layers in the wrong order")
    st, h, b = srv.json("POST", base + "polycam-minus&layer=" + lst(relu1, "nope"), PNG, hdr)
    C.error(st, h, b, 400, contains="'nope' not found", what="polycam unknown layer")
    st, h, b = srv.json("POST", base + "polycam-plus&layer=" + lst(*["input"] * 9), PNG,
                        hdr)
    C.error(st, h, b, 400, contains="at most 8", what="polycam with 9 layers")
    st, h, b = srv.json("POST", base + "polycam-plus&aug_smooth=true", PNG, hdr)
    C.error(st, h, b, 400, contains="does not combine", what="polycam with aug_smooth")


def raw_exchange(port, data, wait=5.0, half_close=False):
    """Sends raw bytes, returns everything read until the server closes or `wait` passes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    end = time.time() + wait
    try:
        while time.time() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    return out


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def body_of(raw):
    return json.loads(raw.partition(b"\r\n\r\n")[2] or b"null")


with Server("--max-image-width", "2000", "--max-instances", "3", "--max-option-bytes", "64",
            "--cors-origins", "http://allowed.test") as srv:
    # ---- ops endpoints ----
    for path in ("/healthz", "/v2/health/live", "/readyz", "/v2/health/ready"):
        st, h, b = srv.json("GET", path)
        C.check(st == 200 and b["status"] in ("ok", "ready"), f"GET {path}: {st} {b}")
    st, h, b = srv.json("GET", "/v1/models")
    names = [m["name"] for m in b["models"]]
    C.check(st == 200 and names == ["tiny", "tiny2"] and b["default_model"] == "tiny",
            f"GET /v1/models: {b}")
    C.check(len(b["models"][0]["sha256"]) == 64, "model sha256 listed")
    st, h, b = srv.json("GET", "/v1/models/tiny")
    C.check(st == 200 and isinstance(b, dict), f"GET /v1/models/tiny: {st}")
    C.check(b["output"]["activation"] == "softmax" and b["output"]["activation_source"] == "default"
            and "logits" not in b["output"], f"tiny: plain logits, camd's softmax: {b['output']}")
    st, h, b = srv.json("GET", "/v1/models/tiny2")
    C.check(st == 200 and b["output"]["activation"] == "softmax" and
            b["output"]["activation_source"] == "model" and
            b["output"]["graph_activation"] == "softmax" and b["output"]["logits"],
            f"tiny2 ends in its own Softmax: {b.get('output')}")
    st, h, b = srv.json("POST", "/v1/models/tiny2/predict", PNG, {"Content-Type": "image/png"})
    preds = b.get("predictions", []) if st == 200 else []
    scores = [p["score"] for p in preds]
    expect = [math.exp(v - max(scores)) for v in scores] if len(preds) == 5 else []
    expect = [v / sum(expect) for v in expect]
    C.check(len(preds) == 5 and abs(sum(scores) - 1) > 1e-3 and
            all(abs(p["probability"] - q) < 1e-6 for p, q in zip(preds, expect)),
            f"tiny2: scores are the logits fed into the model's Softmax and probabilities its "
            f"own softmax of them (not a second softmax): {b}")
    st, h, b = srv.json("GET", "/v1/models/nope")
    C.error(st, h, b, 404, what="GET unknown model")
    st, h, data = srv.request("GET", "/")
    C.check(st == 200 and h["content-type"].startswith("text/html") and b"<html" in data.lower(),
            "GET / serves the demo page")
    st, h, data = srv.request("HEAD", "/healthz")
    C.check(st == 200 and data == b"", f"HEAD /healthz: {st}")

    # ---- body forms ----
    hdr_png = {"Content-Type": "image/png"}
    st, h, raw_png = srv.json("POST", "/v1/models/tiny/explain", PNG,
                              {**hdr_png, "X-Request-Id": "client-id-42"})
    C.check(st == 200 and raw_png["model"]["name"] == "tiny", f"raw PNG explain: {st} {raw_png}")
    C.check(h.get("x-request-id") == "client-id-42" and raw_png.get("request_id") == "client-id-42",
            "X-Request-Id honoured and echoed")
    C.check(raw_png.get("explanations") and raw_png["explanations"][0].get("overlay"),
            "explain answer carries an overlay")
    C.check(len(raw_png.get("predictions", [])) >= 1 and "timings_ms" in raw_png,
            "explain answer carries predictions and timings")
    st, h, b = srv.json("POST", "/v1/models/tiny:explain", PNG,
                        {**hdr_png, "X-Request-Id": "bad id with spaces"})
    C.check(st == 200 and h.get("x-request-id") not in (None, "bad id with spaces") and
            b["request_id"] == h.get("x-request-id"), "insane X-Request-Id replaced")
    C.check(strip_volatile(b) == strip_volatile(raw_png), ":explain alias = /explain")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", JPG, {"Content-Type": "image/jpeg"})
    C.check(st == 200 and b["image"]["format"] == "jpeg", f"raw JPEG explain: {st}")
    body, ctype = multipart({}, {"image": ("small.png", PNG, "image/png")})
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", body, {"Content-Type": ctype})
    C.check(st == 200 and strip_volatile(b) == strip_volatile(raw_png), f"multipart = raw ({st})")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain",
                        json.dumps({"image": base64.b64encode(PNG).decode()}),
                        {"Content-Type": "application/json"})
    C.check(st == 200 and strip_volatile(b) == strip_volatile(raw_png), f"JSON = raw ({st})")
    st, h, b = srv.json("POST", "/v1/explain",
                        json.dumps({"image": "data:image/png;base64," +
                                    base64.b64encode(PNG).decode()}),
                        {"Content-Type": "application/json"})
    C.check(st == 200 and b["model"]["name"] == "tiny", "/v1/explain uses the default model")
    st, h, b = srv.json("POST", "/v1/explain?model=tiny2", PNG, hdr_png)
    C.check(st == 200 and b["model"]["name"] == "tiny2", "/v1/explain?model=tiny2")
    st, h, b = srv.json("POST", "/v1/explain",
                        json.dumps({"model": "tiny2", "image": base64.b64encode(PNG).decode()}),
                        {"Content-Type": "application/json"})
    C.check(st == 200 and b["model"]["name"] == "tiny2", "/v1/explain model in the JSON body")
    body, ctype = multipart({"model": "tiny2", "method": "hirescam"},
                            {"image": ("x.png", PNG, "image/png")})
    st, h, b = srv.json("POST", "/v1/explain", body, {"Content-Type": ctype})
    C.check(st == 200 and b["model"]["name"] == "tiny2" and b["method"] == "hirescam",
            f"/v1/explain model + method in the form: {st} {b.get('method') if b else b}")
    # options in each form
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?topk=3&method=gradcam%2B%2B", PNG, hdr_png)
    C.check(st == 200 and len(b["predictions"]) == 3 and b["method"] == "gradcam++",
            f"query options: {st}")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain",
                        json.dumps({"image": base64.b64encode(PNG).decode(), "topk": 2,
                                    "relu": True, "alpha": 0.25, "target": [1, 2],
                                    "outputs": ["overlay", "heatmap"]}),
                        {"Content-Type": "application/json"})
    C.check(st == 200 and len(b["predictions"]) == 2 and len(b["explanations"]) == 2 and
            b["explanations"][0].get("heatmap"), f"JSON typed options: {st} {str(b)[:300]}")
    # KServe v1
    inst = [{"image": {"b64": base64.b64encode(x).decode()}} for x in (PNG, JPG)]
    st, h, b = srv.json("POST", "/v1/models/tiny:predict", json.dumps({"instances": inst}),
                        {"Content-Type": "application/json"})
    C.check(st == 200 and len(b.get("predictions", [])) == 2, f"KServe predict: {st} {str(b)[:200]}")
    if st == 200:
        C.check(b["predictions"][0]["predictions"] and "explanations" not in b["predictions"][0],
                "predict has scores but no explanations")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", json.dumps({"instances": inst}),
                        {"Content-Type": "application/json"})
    C.check(st == 200 and len(b.get("predictions", [])) == 2 and
            strip_volatile(b["predictions"][0]) == strip_volatile(raw_png),
            "KServe explain: batch of 2, first equals the single request")
    # predict route
    st, h, b = srv.json("POST", "/v1/models/tiny/predict", PNG, hdr_png)
    C.check(st == 200 and b["predictions"] == raw_png["predictions"], "predict = explain's scores")
    # Accept: image/png
    st, h, data = srv.request("POST", "/v1/models/tiny/explain", PNG,
                              {**hdr_png, "Accept": "image/png"})
    C.check(st == 200 and h["content-type"] == "image/png" and data.startswith(PNG_MAGIC),
            "Accept: image/png returns the overlay")
    C.check(data == base64.b64decode(raw_png["explanations"][0]["overlay"].split(",")[-1]),
            "PNG body = the JSON overlay")
    # other image kinds
    for name in ("rgba.png", "gray.png"):
        st, h, b = srv.json("POST", "/v1/models/tiny/explain", fixture(name), hdr_png)
        C.check(st == 200, f"{name}: {st} {b}")

    # the newer methods and several layers through the query (issue 11)
    st, h, info = srv.json("GET", "/v1/models/tiny")
    names = [x["name"] for x in info["layers"]][-2:]
    q = "/v1/models/tiny/explain?outputs=raw&layer=" + "%2C".join(
        urllib.parse.quote(n, safe="") for n in names)
    st, h, b = srv.json("POST", q, PNG, hdr_png)
    C.check(st == 200 and b["layer"] == ",".join(names) and
            b["explanations"][0]["raw"]["width"] == info["input"]["shape"][3],
            f"layer=A,B: fused map at the input's size: {st} {str(b)[:300]}")
    st, h, b = srv.json("POST", q + "%2Cnope", PNG, hdr_png)
    C.error(st, h, b, 400, contains="'nope' not found", what="bad layer in a layer list")
    for m in ("finercam", "shapleycam", "kpcacam", "guidedbackprop", "guidedgradcam", "fullgrad"):
        st, h, b = srv.json("POST", "/v1/models/tiny/explain?outputs=raw&method=" + m, PNG,
                            hdr_png)
        C.check(st == 200 and b["method"] == m and b["explanations"][0]["raw"]["values"],
                f"method={m}: {st} {str(b)[:300]}")
    C.check(st == 200 and b["explanations"][0]["raw"]["width"] == info["input"]["shape"][3],
            f"fullgrad answers at the input's size: {str(b)[:200]}")
    st, h, b = srv.json("POST", q.replace("outputs=raw", "outputs=raw&method=fullgrad"), PNG,
                        hdr_png)
    C.error(st, h, b, 400, contains="fullgrad uses every biased layer", what="fullgrad layer list")
    check_method_options(srv, hdr_png)
    check_polycam(srv, hdr_png, info)

    # ---- errors ----
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?method=nope", PNG, hdr_png)
    C.error(st, h, b, 400, contains="method", what="bad option value")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?bogus=1", PNG, hdr_png)
    C.error(st, h, b, 400, contains="bogus", what="unknown option")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", fixture("corrupt.png"), hdr_png)
    C.error(st, h, b, 400, what="undecodable image")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", fixture("text.txt"), hdr_png)
    C.error(st, h, b, 415, what="not an image with an image content type")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", b"hello", {"Content-Type": "text/plain"})
    C.error(st, h, b, 415, code="unsupported_media_type", what="text/plain body")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", b"{nope", {"Content-Type": "application/json"})
    C.error(st, h, b, 400, code="bad_json", what="bad JSON")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", json.dumps({"image": "!!notbase64!!"}),
                        {"Content-Type": "application/json"})
    C.error(st, h, b, 400, code="bad_base64", what="bad base64")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", json.dumps({"img": "x"}),
                        {"Content-Type": "application/json"})
    C.error(st, h, b, 400, what="JSON without image")
    st, h, b = srv.json("POST", "/v1/models/nope/explain", PNG, hdr_png)
    C.error(st, h, b, 404, code="model_not_found", what="unknown model")
    st, h, b = srv.json("POST", "/v1/explain?model=nope", PNG, hdr_png)
    C.error(st, h, b, 404, code="model_not_found", what="unknown model in the query")
    st, h, b = srv.json("GET", "/v2/nothing")
    C.error(st, h, b, 404, code="not_found", what="unknown route")
    st, h, b = srv.json("GET", "/v1/models/tiny/explain")
    C.error(st, h, b, 405, code="method_not_allowed", what="GET on explain")
    C.check("POST" in h.get("allow", ""), f"405 carries Allow: {h.get('allow')}")
    st, h, b = srv.json("DELETE", "/healthz")
    C.error(st, h, b, 405, what="DELETE /healthz")
    C.check("GET" in h.get("allow", ""), "405 Allow lists GET")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", PNG, {**hdr_png, "Accept": "text/html"})
    C.error(st, h, b, 406, code="not_acceptable", what="Accept text/html")
    st, h, b = srv.json("POST", "/v1/models/tiny/predict", PNG, {**hdr_png, "Accept": "image/png"})
    C.error(st, h, b, 406, what="predict with Accept image/png")
    big = fixture("big.png")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain", big, hdr_png)
    C.error(st, h, b, 413, code="limit_exceeded", contains="2000",
            what="image wider than max_image_width")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain",
                        json.dumps({"instances": inst * 2}), {"Content-Type": "application/json"})
    C.error(st, h, b, 413, code="limit_exceeded", contains="max_instances",
            what="too many instances")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?layer=" + "x" * 100, PNG, hdr_png)
    C.error(st, h, b, 413, contains="max_option_bytes", what="option too long")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?layer=logits", PNG, hdr_png)
    C.error(st, h, b, 400, contains="layer", what="non-spatial layer")
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?method=cam&layer=/relu1/Relu_output_0",
                        PNG, hdr_png)
    C.error(st, h, b, 422, what="method cam on a layer that does not feed the GAP head")
    # 411: POST without Content-Length nor chunked
    raw = raw_exchange(srv.port, b"POST /v1/models/tiny/explain HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: image/png\r\n\r\n")
    C.check(status_of(raw) == 411 and body_of(raw)["error"]["status"] == 411 and
            body_of(raw)["error"]["code"] == "length_required", f"411: {raw[:200]!r}")
    # 413 from Content-Length alone, answered before any body byte is sent
    raw = raw_exchange(srv.port, b"POST /v1/models/tiny/explain HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: image/png\r\nContent-Length: 999999999999\r\n\r\n")
    C.check(status_of(raw) == 413 and "max_body_bytes" in body_of(raw)["error"]["message"] and
            body_of(raw)["error"]["code"] == "limit_exceeded",
            f"413 on Content-Length: {raw[:300]!r}")
    # CORS
    st, h, data = srv.request("OPTIONS", "/v1/models/tiny/explain", None,
                              {"Origin": "http://allowed.test",
                               "Access-Control-Request-Method": "POST"})
    C.check(st == 204 and h.get("access-control-allow-origin") == "http://allowed.test" and
            "POST" in h.get("access-control-allow-methods", ""), f"CORS preflight: {st} {h}")
    st, h, data = srv.request("OPTIONS", "/v1/models/tiny/explain", None,
                              {"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"})
    C.check("access-control-allow-origin" not in h, "CORS: other origins get no grant")
    st, h, b = srv.json("POST", "/v1/models/tiny/predict", PNG, {**hdr_png, "Origin": "http://allowed.test"})
    C.check(st == 200 and h.get("access-control-allow-origin") == "http://allowed.test",
            "CORS header on a simple request")
    # keep-alive survives an error answer
    c = srv.conn()
    st1, _, _ = srv.request("POST", "/v1/models/nope/explain", PNG, hdr_png, conn=c)
    st2, _, _ = srv.request("POST", "/v1/models/tiny/predict", PNG, hdr_png, conn=c)
    c.close()
    C.check(st1 == 404 and st2 == 200, "keep-alive connection reused after a 404")
    # metrics
    st, h, data = srv.request("GET", "/metrics")
    text = data.decode()
    C.check(st == 200 and 'camd_requests_total{route="explain",status="200"}' in text and
            "camd_run_seconds_bucket" in text and "camd_queue_depth" in text and
            'stage="forward"' in text, "metrics exposition")
    log = srv.text()
    access = [json.loads(l) for l in log.splitlines() if l.startswith("{")]
    C.check(any(a.get("request_id") == "client-id-42" and a.get("status") == 200 for a in access),
            "access log line with the request id")
    # a job's parts are consecutive intervals inside the request: queue, run, writing the answer,
    # its way out (resume, queue, send); together at most the request's duration
    jobs = [a for a in access if a.get("status") == 200 and "run_ms" in a]
    C.check(jobs and all(
        a["answer_ms"] > 0 and a["reply_ms"] > 0 and
        a["queue_ms"] + a["run_ms"] + a["answer_ms"] + a["reply_ms"] <= a["duration_ms"] + 1e-3
        for a in jobs), "access log: answer_ms and reply_ms within duration_ms")
    C.check(srv.stop() == 0, "exit 0 on SIGTERM")

# ---- body cap crossed mid-upload (chunked), stalled client, header limit ----
with Server("--max-body-bytes", "65536", "--request-timeout-s", "2",
            "--max-header-bytes", "8192") as srv:
    c = srv.conn()
    c.putrequest("POST", "/v1/models/tiny/explain")
    c.putheader("Content-Type", "image/png")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for i in range(20):  # 20 × 8 KiB = 160 KiB > 64 KiB
        chunk = bytes([i]) * 8192
        c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    b = json.loads(r.read())
    C.check(r.status == 413 and "max_body_bytes = 65536" in b["error"]["message"] and
            b["error"]["code"] == "limit_exceeded",
            f"chunked upload crossing the cap: {r.status} {b}")
    # the same connection still works after the discarded body
    c.request("POST", "/v1/models/tiny/predict", PNG, {"Content-Type": "image/png"})
    r = c.getresponse()
    r.read()
    C.check(r.status == 200, f"connection reusable after 413 mid-upload: {r.status}")
    c.close()
    # stalled client: headers then nothing; the server must close within the timeout
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /v1/models/tiny/explain HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
              b"Content-Length: 5000\r\n\r\n" + PNG[:100])
    t0 = time.time()
    try:
        data = s.recv(4096)
        while data and time.time() - t0 < 9:
            data = s.recv(4096)
        closed = True
    except (socket.timeout, ConnectionResetError):
        closed = False
    s.close()
    el = time.time() - t0
    C.check(closed and el < 6, f"stalled client closed by the timeout after {el:.1f}s")
    # headers beyond the memory limit
    raw = raw_exchange(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 +
                       b"\r\n\r\n")
    C.check(raw == b"" or status_of(raw) in (413, 431, 400), f"oversized headers: {raw[:100]!r}")
    st, h, b = srv.json("GET", "/healthz")
    C.check(st == 200, "server alive after the limit tests")
    C.check(srv.stop() == 0, "exit 0")

# ---- API keys ----
# max_cam_forwards: Score-CAM on tiny's relu2 (16 channels) costs 16 masked forwards per image,
# SS-CAM with n_samples=2 32: over a cap of 20 the request is a 413 naming the key and the count
# before any work; Score-CAM (16) and Grad-CAM (none) pass.
with Server("--max-cam-forwards", "20") as srv:
    st, h, b = srv.json("POST", "/v1/models/tiny/explain?method=sscam&n_samples=2", PNG, hdr_png)
    C.error(st, h, b, 413, code="limit_exceeded", contains="max_cam_forwards is 20",
            what="sscam over max_cam_forwards")
    C.check("32 masked forwards" in b.get("error", {}).get("message", ""),
            f"the count is named: {b}")
    for method in ("scorecam", "gradcam"):
        st, h, b = srv.json("POST", f"/v1/models/tiny/explain?method={method}", PNG, hdr_png)
        C.check(st == 200, f"{method} within max_cam_forwards: {st} {b}")
    C.check(srv.stop() == 0, "max_cam_forwards server: clean stop")

with Server("--api-keys", "sekret-1, sekret-2") as srv:
    st, h, b = srv.json("GET", "/v1/models")
    C.error(st, h, b, 401, code="unauthorized", what="no key")
    C.check(h.get("www-authenticate", "").startswith("Bearer"), "401 has WWW-Authenticate")
    st, h, b = srv.json("POST", "/v1/models/tiny/predict", PNG,
                        {"Content-Type": "image/png", "Authorization": "Bearer wrong"})
    C.error(st, h, b, 401, what="wrong key")
    st, h, b = srv.json("POST", "/v1/models/tiny/predict", PNG,
                        {"Content-Type": "image/png", "Authorization": "Bearer sekret-2"})
    C.check(st == 200, f"right key: {st}")
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/"):
        st, _, _ = srv.request("GET", path)
        C.check(st == 200, f"{path} stays open with API keys: {st}")
    C.check(srv.stop() == 0, "exit 0")

# ---- startup errors ----
import subprocess
for args, needle in ((["--workers", "0"], "workers"), (["--nonsense", "1"], "nonsense"),
                     (["--models", '[{"name": "x", "path": "/nonexistent.onnx"}]'], "nonexistent")):
    p = subprocess.run([ct.CAMD, "serve", "--config", f"{ct.FIX}/camd.json", "--port", "0", *args],
                       capture_output=True, timeout=30)
    C.check(p.returncode != 0 and needle in p.stderr.decode(),
            f"startup error names {needle}: rc={p.returncode} {p.stderr[-300:]!r}")
p = subprocess.run([ct.CAMD, "serve", "--port", "0"], capture_output=True, timeout=30,
                   env={"CAMD_CONFIG": f"{ct.FIX}/camd.json", "CAMD_MAX_BATCH": "x"})
C.check(p.returncode != 0 and b"CAMD_MAX_BATCH" in p.stderr, "bad environment value named")
p = subprocess.run([ct.CAMD, "serve", "--help"], capture_output=True, timeout=30)
C.check(p.returncode == 0 and b"CAMD_MAX_BODY_BYTES" in p.stdout and b"--batch-window-us" in p.stdout,
        "serve --help lists keys, env and flags")
# The README's configuration table shows the defaults --help shows (one default column in the
# key table; the README is written by hand).
help_defaults = dict(re.findall(r"^  (\w+) +CAMD_\w+ +--[\w-]+\n +.*?(\[[^\]\n]*\])?$",
                                p.stdout.decode(), re.M))
readme = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                           "README.md")).read()
readme_defaults = dict(re.findall(r"^\| `(\w+)` \| `CAMD_\w+` \| `--[\w-]+` \| .*?(\[[^\]\n]*\])? \|$",
                                  readme, re.M))
C.check(len(help_defaults) >= 27 and help_defaults == readme_defaults,
        f"README config table = serve --help: {set(help_defaults.items()) ^ set(readme_defaults.items())}")
C.done("service.api")
