#!/usr/bin/python3
"""What libmicrohttpd 0.9.75 answers by itself, before camd's handler sees a request.

Usage: test_mhd_errors.py CAMD FIXTURES

Raw sockets send what MHD rejects while parsing; the test pins down today's answers (the README's
"Errors camd does not write" table lists them): status line, no Content-Type, an HTML body,
`Connection: close`, and camd's warning line in the log (MHD's error log goes through camd's
logger). A malformed request line gets no answer at all (the connection is closed). If a future
libmicrohttpd changes any of this, the test fails and the README table must change with it.
Requests camd does see (e.g. HTTP/1.1 without Host, which MHD 0.9.75 lets through) are answered
as camd's JSON.
"""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(__file__))
import camdtest as ct  # noqa: E402

ct.init()
c = ct.Checker()


def raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # end of request: MHD answers what it has
    except OSError:  # MHD may answer and close before the request is fully sent
        pass
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    return out


CASES = [
    # (what, bytes, status line, body text)
    ("header over max_header_bytes", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000
     + b"\r\n\r\n", b"HTTP/1.1 431 Request Header Fields Too Large", b"Request too big"),
    ("request target over max_header_bytes", b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     b"HTTP/1.1 414 URI Too Long", b"Request too big"),
    ("request line without a version", b"GET /healthz\r\n\r\n", b"HTTP/1.1 400 Bad Request",
     b"Request malformed"),
    ("header line without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBadHeader\r\n\r\n",
     b"HTTP/1.1 400 Bad Request", b"syntactically incorrect"),
    ("unsupported HTTP version", b"GET /healthz HTTP/2.5\r\nHost: x\r\n\r\n",
     b"HTTP/1.1 505 HTTP Version Not Supported", b"version is not supported"),
    ("malformed chunked body", b"POST /v1/models/tiny/predict HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
     b"HTTP/1.1 400 Bad Request", b"chunked encoding"),
    ("invalid Content-Length", b"POST /v1/models/tiny/predict HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: abc\r\n\r\n", b"HTTP/1.1 400 Bad Request", b"Content-Length"),
]

with ct.Server() as s:
    for what, data, status, text in CASES:
        # MHD closes with the rest of an oversized request unread; the kernel's reset can then
        # discard its answer before the client reads it: up to 3 attempts for an answer.
        for _ in range(3):
            out = raw(s.port, data)
            if out:
                break
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        c.check(lines[0] == status, f"{what}: status line {lines[0]!r}, expected {status!r}")
        hdrs = {ln.split(b":", 1)[0].lower() for ln in lines[1:] if b":" in ln}
        c.check(b"content-type" not in hdrs and b"x-request-id" not in hdrs,
                f"{what}: MHD's own answer (no Content-Type, no X-Request-Id): {hdrs}")
        if what == "invalid Content-Length":  # MHD 0.9.75 writes its status line and headers
            c.check(body.startswith(lines[0]), f"{what}: the headers twice ({body[:60]!r})")
            body = body.partition(b"\r\n\r\n")[2]  # twice (a libmicrohttpd bug; README)
        c.check(body.startswith(b"<html>") and text in body, f"{what}: HTML body {body[:120]!r}")
        c.check(b"connection" in hdrs, f"{what}: Connection: close")
    out = raw(s.port, b"GARBAGE\r\n\r\n")
    c.check(out == b"", f"a malformed request line: the connection is closed unanswered ({out[:80]!r})")
    out = raw(s.port, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    c.check(out.startswith(b"HTTP/1.1 200") and b"application/json" in out,
            f"HTTP/1.1 without Host reaches camd (MHD 0.9.75 is lenient): {out[:80]!r}")
    out = raw(s.port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    c.check(out.startswith(b"HTTP/1.1 404") and b'"code":"not_found"' in out,
            "what camd sees is answered as camd's JSON")
    log = s.text()
    c.check(log.count("libmicrohttpd: Error processing request") >= len(CASES),
            "each MHD answer is logged as a camd warning")
    c.check(s.stop() == 0, "clean stop")
c.done("service.mhd_errors")
