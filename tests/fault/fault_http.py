#!/usr/bin/python3
"""Allocation-failure sweep through the HTTP path of one explain request (tests/fault).

Usage: fault_http.py CAMD FIXTURES

Starts the real `camd serve` (a -DCAMD_FAULT_INJECT=ON build) on 127.0.0.1 with one worker.
For N = 1, 2, ...: POST one explain request with `X-Camd-Fault-Alloc: N` (the N-th allocation
camd makes from the start of that request fails); the answer must be 200 or a JSON error
500/503 out_of_memory; then the same request without the header must answer 200 with the
reference body. Stops when the answer says the armed failure did not happen (X-Camd-Fault:
not-fired), i.e. N exceeds the request's allocations. The server must then stop cleanly on
SIGTERM (exit 0: under ASan, LeakSanitizer found no leak). Bounded: at most 5000 steps.
Exit 77 when the binary has no failure injection.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "service"))
import camdtest as ct  # noqa: E402

MAX_STEPS = 5000


def main():
    ct.init()
    c = ct.Checker()
    img = ct.fixture("small.png")
    path = "/v1/models/tiny/explain?target=top2&outputs=all"
    hdr = {"Content-Type": "image/png"}
    with ct.Server("--workers", "1", "--blas-threads", "1", "--max-batch", "1") as s:
        st, h, ref = s.request("POST", path, img, hdr)
        c.check(st == 200, f"reference request: {st} {ref[:200]!r}")
        st, h, _ = s.request("POST", path, img, dict(hdr, **{"X-Camd-Fault-Alloc": "1"}))
        if "x-camd-fault" not in h:
            print("SKIPPED: not a CAMD_FAULT_INJECT build (no X-Camd-Fault header)")
            s.stop()
            sys.exit(77)
        ref = ct.strip_volatile(json.loads(ref))
        codes = {}
        n = 1
        while n <= MAX_STEPS:
            try:
                st, h, body = s.request("POST", path, img, dict(hdr, **{"X-Camd-Fault-Alloc": str(n)}))
            except Exception as e:  # noqa: BLE001 - a dropped connection is a failure
                c.check(False, f"allocation {n}: no answer ({e!r})")
                break
            fired = h.get("x-camd-fault") == "fired"
            if st != 200:
                ok = st in (500, 503) and h.get("content-type", "").startswith("application/json")
                try:
                    err = json.loads(body)["error"]
                    ok = ok and err["status"] == st and err["code"] in ("out_of_memory", "overloaded")
                    codes[err["code"]] = codes.get(err["code"], 0) + 1
                except (ValueError, KeyError, TypeError):
                    ok = False
                c.check(ok, f"allocation {n}: expected 200 or a JSON 500/503, got {st} {body[:200]!r}")
            else:
                codes["200"] = codes.get("200", 0) + 1
                c.check(ct.strip_volatile(json.loads(body)) == ref,
                        f"allocation {n}: a 200 answer differs from the reference")
            st2, _, body2 = s.request("POST", path, img, hdr)
            c.check(st2 == 200 and ct.strip_volatile(json.loads(body2)) == ref,
                    f"allocation {n}: the next request answered {st2} or differs")
            if not fired:
                break
            n += 1
        c.check(n <= MAX_STEPS, f"the sweep did not end within {MAX_STEPS} steps")
        print(f"fault.http: {n - 1} allocations swept; answers {codes}")
        rc = s.stop()
        c.check(rc == 0, f"camd exit status {rc} after SIGTERM (LeakSanitizer?)\n{s.text()[-3000:]}")
    c.done("fault.http")


if __name__ == "__main__":
    main()
