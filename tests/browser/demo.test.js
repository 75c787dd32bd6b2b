// Browser test: headless Chromium (playwright-core) uploads an image on camd's demo page and checks scores + overlay.
"use strict";
// Usage: node demo.test.js CAMD FIXTURES OUTDIR   (run through run_browser.py, which skips cleanly)
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [camd, fixtures, outdir] = process.argv.slice(2);
const CHROMIUM = process.env.CAMD_CHROMIUM || "/usr/bin/chromium";

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(camd, ["serve", "--config", path.join(fixtures, "camd.json"), "--port", "0"],
                       { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const timer = setTimeout(() => reject(new Error("camd did not start:\n" + log)), 30000);
    const onData = (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]), log: () => log });
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.on("exit", (code) => reject(new Error("camd exited with " + code + ":\n" + log)));
  });
}

async function main() {
  fs.mkdirSync(outdir, { recursive: true });
  const server = await startServer();
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "camd-chromium-"));
  let ctx = null;
  let failed = false;
  const check = (cond, what) => {
    console.log((cond ? "ok   " : "FAIL ") + what);
    if (!cond) failed = true;
  };
  try {
    ctx = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1100, height: 760 },
      timeout: 60000,
    });
    const page = ctx.pages()[0] || (await ctx.newPage());
    const consoleErrors = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    const external = [];
    page.on("request", (r) => { if (!r.url().startsWith(`http://127.0.0.1:${server.port}/`) &&
                                    !r.url().startsWith("data:") && !r.url().startsWith("blob:"))
                                  external.push(r.url()); });
    await page.goto(`http://127.0.0.1:${server.port}/`, { timeout: 30000 });
    await page.waitForFunction(() => document.querySelectorAll("#model option").length >= 2 &&
                                     document.querySelectorAll("#method option").length > 0,
                               null, { timeout: 20000 });
    const models = await page.$$eval("#model option", (os) => os.map((o) => o.value));
    check(models.includes("tiny") && models.includes("tiny2"), "model list from GET /v1/models: " + models);
    await page.selectOption("#method", "gradcam++");
    await page.selectOption("#target", "3");
    await page.setInputFiles("#file", path.join(fixtures, "img2.png"));
    await page.click("#go");
    await page.waitForFunction(() => document.querySelectorAll("#scores tr.score").length > 0 &&
                                     document.getElementById("heat").naturalWidth > 0,
                               null, { timeout: 30000 });
    const rows = await page.$$eval("#scores tr.score", (rs) => rs.map((r) => r.children[0].textContent));
    check(rows.length === 5 && rows.every((r) => r.startsWith("tiny_label_")), "top-5 scores shown: " + rows);
    const heat = await page.$eval("#heat", (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
    const orig = await page.$eval("#orig", (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
    check(heat.w === orig.w && heat.h === orig.h && heat.w > 0, `overlay matches the image size ${JSON.stringify(heat)}`);
    const meta = await page.textContent("#meta");
    check(meta.includes("gradcam++") && meta.includes("(3)"), "method and target reported: " + meta);
    await page.fill("#opacity", "80");
    await page.dispatchEvent("#opacity", "input");
    const op = await page.$eval("#heat", (i) => i.style.opacity);
    check(op === "0.8", "opacity slider drives the overlay: " + op);
    const status = await page.textContent("#status");
    check(/Done in/.test(status), "status line: " + status);
    // A DICOM file: the server's windowed frame is shown, the window presets apply, the overlay
    // is offered as a DICOM Secondary Capture.
    const dcm = process.env.CAMD_DICOM_SAMPLE;
    if (dcm && fs.existsSync(dcm)) {
      await page.selectOption("#method", "gradcam");
      await page.selectOption("#target", "");
      await page.selectOption("#window", "lung");
      await page.setInputFiles("#file", dcm);
      await page.waitForFunction(() => !document.getElementById("go").disabled, null, { timeout: 10000 });
      const dcmResponse = page.waitForResponse(
          (r) => (r.request().headers()["accept"] || "") === "application/dicom", { timeout: 30000 });
      await page.click("#go");
      await page.waitForFunction(() => document.getElementById("dicomMeta").textContent.includes("DICOM") &&
                                       document.getElementById("dcmLink").style.display !== "none",
                                 null, { timeout: 30000 });
      const dmeta = await page.textContent("#dicomMeta");
      check(dmeta.includes("DICOM CT") && dmeta.includes("lung") && dmeta.includes("-600 / 1500"),
            "DICOM metadata and the lung window shown: " + dmeta);
      const dorig = await page.$eval("#orig", (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
      const dheat = await page.$eval("#heat", (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
      check(dorig.w === 128 && dorig.h === 128 && dheat.w === 128,
            `the windowed CT frame and its heatmap are shown ${JSON.stringify([dorig, dheat])}`);
      const resp = await dcmResponse;
      const got = await page.evaluate(async () => ({
        type: dcmBlob.type, size: dcmBlob.size, magic: await dcmBlob.slice(128, 132).text() }));
      check(resp.status() === 200 && got.type === "application/dicom" && got.size > 1000 &&
            got.magic === "DICM", "the overlay is offered as a DICOM file: " + JSON.stringify(got));
      await page.screenshot({ path: path.join(outdir, "demo-dicom.png"), fullPage: true });
    } else {
      console.log("note: no DICOM sample (python3-pydicom) — DICOM part not run");
    }
    check(external.length === 0, "no external requests: " + external.join(", "));
    check(consoleErrors.length === 0, "no console errors: " + consoleErrors.join(" | "));
    const shot = path.join(outdir, "demo.png");
    await page.screenshot({ path: shot, fullPage: true });
    check(fs.statSync(shot).size > 1000, "screenshot saved to " + shot);
  } catch (e) {
    console.log("FAIL " + (e && e.stack ? e.stack : e));
    failed = true;
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(userDir, { recursive: true, force: true });
    server.proc.removeAllListeners("exit");
    server.proc.kill("SIGTERM");
    await new Promise((r) => server.proc.once("exit", r));
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log("FAIL " + e); process.exit(1); });
