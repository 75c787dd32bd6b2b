#!/usr/bin/python3
# Browser-test launcher: exits 77 (ctest SKIP) when node, playwright-core or chromium is missing.
"""Usage: run_browser.py CAMD FIXTURES OUTDIR. Runs `node demo.test.js` beside this file.

The locked npm packages (playwright-core only; it drives Debian's chromium and downloads no
browser) are installed with `npm ci` into $CAMD_NPM_DIR (ctest: <build>/npm/browser; by hand:
OUTDIR/npm), npm's cache included, never into the source tree. The first run needs the npm
registry; later runs are offline."""
import os
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
node = shutil.which("node")
chromium = os.environ.get("CAMD_CHROMIUM", "/usr/bin/chromium")
npm_dir = os.environ.get("CAMD_NPM_DIR") or os.path.join(sys.argv[3], "npm")
modules = os.path.join(npm_dir, "node_modules")
env = dict(os.environ, npm_config_cache=os.path.join(npm_dir, ".npm-cache"), NODE_PATH=modules)
missing = []
if not node:
    missing.append("node")
if node and shutil.which("npm") and not os.path.isdir(os.path.join(modules, "playwright-core")):
    os.makedirs(npm_dir, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(here, f), npm_dir)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=npm_dir,
                   env=env, timeout=600, check=False)
if not os.path.isdir(os.path.join(modules, "playwright-core")):
    missing.append(f"playwright-core (npm ci in {npm_dir} failed: offline?)")
if not os.access(chromium, os.X_OK):
    missing.append(f"chromium ({chromium}; apt-get install -y chromium)")
if not os.path.exists(os.path.join(sys.argv[2], "tiny.onnx")):
    missing.append("service fixtures")
if missing:
    print("SKIPPED: missing " + ", ".join(missing))
    sys.exit(77)
try:  # a real DICOM file for the page's DICOM path (pydicom's test data, offline)
    from pydicom.data import get_testdata_file
    env["CAMD_DICOM_SAMPLE"] = get_testdata_file("CT_small.dcm") or ""
except ImportError:
    pass
p = subprocess.run([node, os.path.join(here, "demo.test.js"), *sys.argv[1:4]], env=env, timeout=240)
sys.exit(p.returncode)
