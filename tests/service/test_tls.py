#!/usr/bin/python3
"""TLS against the real `camd serve` on 127.0.0.1 with certificates this test makes (openssl).

Usage: test_tls.py CAMD FIXTURES

  - a CA, a server certificate (localhost / 127.0.0.1), a client certificate (clientAuth), a
    second server certificate (CN camd-reloaded) and a self-signed "rogue" client certificate;
  - tls_cert + tls_key: curl and Python's ssl get answers over HTTPS (an explain too); openssl
    s_client: TLS 1.1 refused (offered with SECLEVEL=0, so the refusal is the server's), TLS 1.2
    and 1.3 accepted; plain HTTP on the TLS port gets no HTTP answer;
  - SIGHUP after the certificate files are replaced: the same process and port serve the new
    certificate; SIGHUP with a broken file keeps the previous certificate (a warning logged);
  - tls_ca (mutual TLS): no client certificate → handshake refused; the rogue certificate →
    refused; the CA-signed client certificate → 200;
  - tls_cert without tls_key → a configuration error naming both keys.
Exit 77 without openssl or curl.
"""
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import camdtest as ct  # noqa: E402

ct.init()
for tool in ("openssl", "curl"):
    if not shutil.which(tool):
        print(f"SKIPPED: {tool} not installed")
        sys.exit(77)
c = ct.Checker()
D = tempfile.mkdtemp(prefix="camd-tls-")


def sh(*args, input=None, timeout=30):
    return subprocess.run(list(args), input=input, capture_output=True, timeout=timeout)


def make_cert(name, cn, ext, ca=True):
    key, pem = os.path.join(D, name + ".key"), os.path.join(D, name + ".pem")
    if not ca:  # self-signed
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem,
           "-days", "2", "-subj", f"/CN={cn}")
        return pem, key
    csr = os.path.join(D, name + ".csr")
    extf = os.path.join(D, name + ".ext")
    with open(extf, "w") as f:
        f.write(ext)
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
       f"/CN={cn}")
    r = sh("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(D, "ca.pem"), "-CAkey",
           os.path.join(D, "ca.key"), "-CAcreateserial", "-out", pem, "-days", "2", "-extfile", extf)
    assert r.returncode == 0, r.stderr
    return pem, key


sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(D, "ca.key"),
   "-out", os.path.join(D, "ca.pem"), "-days", "2", "-subj", "/CN=camd test CA")
CA = os.path.join(D, "ca.pem")
SRV_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
srv = make_cert("server", "camd-first", SRV_EXT)
srv2 = make_cert("server2", "camd-reloaded", SRV_EXT)
cli = make_cert("client", "client", "extendedKeyUsage=clientAuth\n")
rogue = make_cert("rogue", "rogue", None, ca=False)
LIVE_CERT, LIVE_KEY = os.path.join(D, "live.pem"), os.path.join(D, "live.key")
shutil.copy(srv[0], LIVE_CERT)
shutil.copy(srv[1], LIVE_KEY)


def curl(port, path="/healthz", *extra):
    r = sh("curl", "-sS", "--max-time", "20", "--cacert", CA, *extra,
           f"https://127.0.0.1:{port}{path}", "-o", "-", "-w", "\n%{http_code}")
    out = r.stdout.decode(errors="replace")
    body, _, code = out.rpartition("\n")
    return r.returncode, code, body


def s_client(port, *args):
    """openssl s_client: (protocol, cipher, peer subject) of the handshake, '' when it failed."""
    r = sh("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA, *args,
           input=b"", timeout=20)
    out = r.stdout.decode(errors="replace")
    proto = cipher = subject = ""
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Protocol") and ":" in line and not proto:
            proto = line.split(":", 1)[1].strip()
        if line.startswith("New,") and "Cipher is" in line:  # "New, TLSv1.3, Cipher is X"
            cipher = line.split("Cipher is", 1)[1].strip()
            parts = [p.strip() for p in line.split(",")]
            if len(parts) > 2 and parts[1].startswith("TLS"):
                proto = parts[1]
        if line.startswith("subject="):
            subject = line
    return (proto if cipher not in ("", "(NONE)") else ""), cipher, subject


def https(port, path, body=None, method="GET", cert=None):
    ctx = ssl.create_default_context(cafile=CA)
    if cert:
        ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": "image/png"} if body else {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


# --- server TLS, versions, SIGHUP reload ---
with ct.Server("--tls-cert", LIVE_CERT, "--tls-key", LIVE_KEY) as s:
    port = s.port
    c.check("listening on https://" in s.text(), "the start line says https")
    rc, code, body = curl(port)
    c.check(rc == 0 and code == "200" and json.loads(body)["status"] == "ok",
            f"curl over TLS: {rc} {code} {body[:200]}")
    st, data = https(port, "/v1/models/tiny/explain?outputs=bbox", ct.fixture("small.png"), "POST")
    c.check(st == 200 and "explanations" in json.loads(data), f"explain over TLS: {st} {data[:200]!r}")
    proto, cipher, subject = s_client(port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    c.check(proto == "", f"TLS 1.1 must be refused, got {proto} {cipher}")
    for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        proto, cipher, subject = s_client(port, flag)
        c.check(proto == want, f"{want} must be accepted, got {proto!r} {cipher!r}")
        c.check("camd-first" in subject, f"{want}: certificate subject {subject!r}")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        plain = r.status
    except (OSError, http.client.HTTPException) as e:
        plain = repr(e)
    c.check(not isinstance(plain, int) or plain == 400, f"plain HTTP on the TLS port got {plain}")

    shutil.copy(srv2[0], LIVE_CERT)
    shutil.copy(srv2[1], LIVE_KEY)
    pid = s.proc.pid
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 20
    while time.time() < deadline and "TLS certificates reloaded" not in s.text():
        time.sleep(0.05)
    c.check("TLS certificates reloaded" in s.text(), "SIGHUP: reload logged")
    proto, _, subject = s_client(port, "-tls1_3")
    c.check(proto == "TLSv1.3" and "camd-reloaded" in subject,
            f"after SIGHUP the same port serves the new certificate: {proto} {subject!r}")
    c.check(s.proc.pid == pid and s.proc.poll() is None, "same process after SIGHUP")
    rc, code, _ = curl(port)
    c.check(rc == 0 and code == "200", f"curl after the reload: {rc} {code}")

    with open(LIVE_CERT, "w") as f:
        f.write("not a certificate\n")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 20
    while time.time() < deadline and "not reloaded" not in s.text():
        time.sleep(0.05)
    c.check("not reloaded" in s.text(), "SIGHUP with a broken file: warning logged")
    proto, _, subject = s_client(port, "-tls1_2")
    c.check(proto == "TLSv1.2" and "camd-reloaded" in subject,
            f"a broken file keeps the previous certificate: {proto} {subject!r}")
    c.check(s.stop() == 0, "clean stop")

# --- mutual TLS ---
with ct.Server("--tls-cert", srv[0], "--tls-key", srv[1], "--tls-ca", CA) as s:
    rc, code, _ = curl(s.port)
    c.check(rc != 0 and code != "200", f"mTLS without a client certificate must fail: {rc} {code}")
    rc, code, _ = curl(s.port, "/healthz", "--tls-max", "1.2")
    c.check(rc != 0 and code != "200", f"mTLS (TLS 1.2) without a client certificate: {rc} {code}")
    rc, code, _ = curl(s.port, "/healthz", "--cert", rogue[0], "--key", rogue[1])
    c.check(rc != 0 and code != "200", f"mTLS with a certificate the CA did not sign: {rc} {code}")
    rc, code, body = curl(s.port, "/healthz", "--cert", cli[0], "--key", cli[1])
    c.check(rc == 0 and code == "200", f"mTLS with the client certificate: {rc} {code} {body[:100]}")
    st, data = https(s.port, "/v1/models", cert=cli)
    c.check(st == 200 and "models" in json.loads(data), f"python ssl with the client certificate: {st}")
    proto, _, _ = s_client(s.port, "-tls1_2", "-cert", cli[0], "-key", cli[1])
    c.check(proto == "TLSv1.2", f"s_client with the client certificate: {proto!r}")
    c.check(s.stop() == 0, "clean stop (mTLS)")

# --- configuration errors ---
r = sh(ct.CAMD, "serve", "--config", os.path.join(ct.FIX, "camd.json"), "--port", "0", "--tls-cert",
       srv[0])
err = r.stdout.decode() + r.stderr.decode()
c.check(r.returncode != 0 and "tls_key" in err, f"tls_cert without tls_key: {r.returncode} {err[-300:]}")
r = sh(ct.CAMD, "serve", "--config", os.path.join(ct.FIX, "camd.json"), "--port", "0", "--tls-cert",
       srv[0], "--tls-key", cli[1])
err = r.stdout.decode() + r.stderr.decode()
c.check(r.returncode != 0 and "does not belong" in err, f"mismatched key: {r.returncode} {err[-300:]}")
shutil.rmtree(D, ignore_errors=True)
c.done("service.tls")
