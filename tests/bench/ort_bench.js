// ONNX Runtime latency of one model: median forward time in ms, printed as one JSON line.
// usage: node ort_bench.js MODEL.onnx --threads N [--runs 20] [--warmup 3] [--shape 1,3,224,224]
"use strict";
const ort = require("onnxruntime-node");

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

async function main() {
  const model = process.argv[2];
  if (!model || model.startsWith("--")) {
    console.error("usage: node ort_bench.js MODEL.onnx --threads N [--runs R] [--warmup W] [--shape 1,3,224,224]");
    process.exit(2);
  }
  const threads = parseInt(arg("--threads", "1"), 10);
  const runs = parseInt(arg("--runs", "20"), 10);
  const warmup = parseInt(arg("--warmup", "3"), 10);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const inputName = session.inputNames[0];
  const shape = arg("--shape", "1,3,224,224").split(",").map((x) => parseInt(x, 10));
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  let s = 12345;
  for (let i = 0; i < count; i++) {  // deterministic pseudo-random input in [-1, 1)
    s = (s * 1103515245 + 12345) % 2147483648;
    data[i] = s / 1073741824 - 1;
  }
  const feeds = { [inputName]: new ort.Tensor("float32", data, shape) };
  // Only the first output (logits): the intermediate outputs are computed anyway.
  const fetches = [session.outputNames[0]];
  for (let i = 0; i < warmup; i++) await session.run(feeds, fetches);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds, fetches);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  console.log(JSON.stringify({ runtime: "onnxruntime-node", version: ort.env.versions ? ort.env.versions.common : null,
                               model, threads, forward_ms_median: median }));
}

main().catch((e) => {
  console.error("ort_bench: " + (e && e.message ? e.message : e));
  process.exit(1);
});
