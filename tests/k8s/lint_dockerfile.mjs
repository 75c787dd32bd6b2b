// Lints Dockerfiles with dockerfile-utils' validator (the one behind the Dockerfile language
// server): any diagnostic of severity Error fails; warnings are printed. Also checks the
// properties camd's image promises: multi-stage on debian:bookworm-slim, non-root USER,
// EXPOSE 8080, a HEALTHCHECK, exec-form ENTRYPOINT (camd as PID 1 gets SIGTERM).
// The image checks apply to files given after --image; the others only go through the validator.
//   node lint_dockerfile.mjs --image ../../Dockerfile [--other ../../docker/lb/Dockerfile ...]
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { validate } = require("dockerfile-utils");

const files = [];
let strict = true;
for (const a of process.argv.slice(2)) {
  if (a === "--image") strict = true;
  else if (a === "--other") strict = false;
  else files.push({ file: a, strict });
}
if (!files.length) {
  console.error("usage: node lint_dockerfile.mjs [--image] Dockerfile... [--other Dockerfile...]");
  process.exit(2);
}
let errors = 0;
for (const { file, strict: imageRules } of files) {
  const text = fs.readFileSync(file, "utf8");
  const diags = validate(text, {});
  for (const d of diags) {
    const sev = d.severity === 1 ? "error" : d.severity === 2 ? "warning" : "info";
    console.log(`${file}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${sev}: ${d.message}`);
    if (d.severity === 1) errors++;
  }
  // Instructions with continuation lines joined, comments dropped.
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const instr = (name) => lines.filter((l) => l.toUpperCase().startsWith(name + " "));
  const need = (ok, msg) => {
    if (!ok) {
      console.log(`${file}: error: ${msg}`);
      errors++;
    }
  };
  if (imageRules) {
    const froms = instr("FROM");
    need(froms.length >= 2, "expected a multi-stage build (build + runtime)");
    need(froms.every((f) => /bookworm-slim|\$\{?DEBIAN_IMAGE\}?/.test(f)), "every stage must start from debian:bookworm-slim");
    const users = instr("USER");
    need(users.length && !/^USER\s+(root|0)(:|\s|$)/i.test(users[users.length - 1]), "the final stage must run as a non-root USER");
    need(instr("EXPOSE").some((l) => /\b8080\b/.test(l)), "EXPOSE 8080 missing");
    need(instr("HEALTHCHECK").length === 1, "one HEALTHCHECK expected");
    const ep = instr("ENTRYPOINT");
    need(/^ENTRYPOINT\s+\[/.test(ep[ep.length - 1]), "ENTRYPOINT must use the exec (JSON) form so camd is PID 1");
  }
}
if (errors) {
  console.error(`${errors} error(s)`);
  process.exit(1);
}
console.log(`${files.length} Dockerfile(s) clean`);
