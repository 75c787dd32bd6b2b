#!/usr/bin/python3
# Browser-test launcher: exits 77 (ctest SKIP) when node, playwright-core or chromium is missing.
"""Usage: run_browser.py CAMD FIXTURES OUTDIR. Runs `node demo.test.js` beside this file."""
import os
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
node = shutil.which("node")
chromium = os.environ.get("CAMD_CHROMIUM", "/usr/bin/chromium")
missing = []
if not node:
    missing.append("node")
if node and shutil.which("npm") and not os.path.isdir(os.path.join(here, "node_modules", "playwright-core")):
    # First run on a clean checkout: install the locked packages (playwright-core only; it
    # uses Debian's chromium, it downloads no browser).
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=here,
                   timeout=600, check=False)
if not os.path.isdir(os.path.join(here, "node_modules", "playwright-core")):
    missing.append("playwright-core (cd tests/browser && npm ci)")
if not os.access(chromium, os.X_OK):
    missing.append(f"chromium ({chromium}; apt-get install -y chromium)")
if not os.path.exists(os.path.join(sys.argv[2], "tiny.onnx")):
    missing.append("service fixtures")
if missing:
    print("SKIPPED: missing " + ", ".join(missing))
    sys.exit(77)
p = subprocess.run([node, os.path.join(here, "demo.test.js"), *sys.argv[1:4]], timeout=240)
sys.exit(p.returncode)
