// Validates camd's Kubernetes manifests offline against the Kubernetes API schemas:
// every YAML document under the given directory is matched by apiVersion/kind to a
// kubernetes-models class and checked with .validate(). Also checks what the schemas cannot:
// the ConfigMap's camd.json parses, and the Deployment's probes/ports/labels fit together.
//   node validate_manifests.mjs ../../docker/k8s
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const dir = process.argv[2] || path.join(path.dirname(new URL(import.meta.url).pathname), "../../docker/k8s");

// apiVersion → kubernetes-models module path ("v1" is the core group).
function modelClass(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  let m;
  try {
    m = require(mod);
  } catch (e) {
    return null;
  }
  return m[kind] || null;
}

const failures = [];
const fail = (where, msg) => failures.push(`${where}: ${msg}`);
const objects = [];

const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
if (!files.length) {
  console.error(`no YAML files in ${dir}`);
  process.exit(1);
}
for (const f of files) {
  const text = fs.readFileSync(path.join(dir, f), "utf8");
  const docs = YAML.parseAllDocuments(text);
  docs.forEach((doc, i) => {
    const where = `${f}#${i}`;
    if (doc.errors.length) return fail(where, `YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
    const obj = doc.toJS();
    if (obj == null) return;
    if (obj.kind === "Kustomization") {
      // Not a Kubernetes API object: check that it lists every manifest of the directory.
      const listed = new Set(obj.resources || []);
      for (const g of files) if (g !== f && !listed.has(g)) fail(where, `resources does not list ${g}`);
      for (const r of listed) if (!files.includes(r)) fail(where, `resources lists missing ${r}`);
      console.log(`ok   ${where} Kustomization (resources checked)`);
      return;
    }
    const Cls = obj.apiVersion && obj.kind ? modelClass(obj.apiVersion, obj.kind) : null;
    if (!Cls) return fail(where, `unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`);
    try {
      new Cls(obj).validate();
    } catch (e) {
      return fail(where, `${obj.kind} ${obj.metadata?.name}: ${e.message}`);
    }
    objects.push({ where, obj });
    console.log(`ok   ${where} ${obj.apiVersion} ${obj.kind} ${obj.metadata.name}`);
  });
}

// Cross-object checks.
const byKind = (k) => objects.filter((o) => o.obj.kind === k);
const cms = byKind("ConfigMap");
for (const { where, obj } of cms) {
  for (const [key, value] of Object.entries(obj.data || {})) {
    if (!key.endsWith(".json")) continue;
    try {
      const cfg = JSON.parse(value);
      if (!Array.isArray(cfg.models) || !cfg.models.length) fail(where, `${key}: no "models"`);
      // Entries for models baked into the image must agree with the model's own JSON.
      for (const m of cfg.models || []) {
        const base = /^\/opt\/camd\/models\/(.+)\.onnx$/.exec(m.path || m.onnx || "");
        const own = base && path.join(dir, "../../models", base[1] + ".json");
        if (!own || !fs.existsSync(own)) continue;
        const ref = JSON.parse(fs.readFileSync(own, "utf8"));
        const alias = { width: "input_width", height: "input_height", activation: "output_activation" };
        for (const k of ["mean", "std", "scale", "default_layer", "width", "height", "resize", "activation"]) {
          const want = ref[k] ?? ref[alias[k]];
          if (want !== undefined && JSON.stringify(m[k]) !== JSON.stringify(want))
            fail(where, `${key}: model ${m.name}: ${k} = ${JSON.stringify(m[k])}, models/${base[1]}.json says ${JSON.stringify(want)}`);
        }
      }
    } catch (e) {
      fail(where, `${key} is not valid JSON: ${e.message}`);
    }
  }
}
for (const { where, obj } of byKind("Deployment")) {
  const spec = obj.spec;
  const sel = spec.selector.matchLabels || {};
  const labels = spec.template.metadata?.labels || {};
  for (const [k, v] of Object.entries(sel)) if (labels[k] !== v) fail(where, `selector ${k}=${v} does not match the pod labels`);
  for (const c of spec.template.spec.containers) {
    const ports = new Set((c.ports || []).flatMap((p) => [p.name, p.containerPort]));
    const probe = (name, p, wantPath) => {
      if (!p) return fail(where, `${c.name}: no ${name}`);
      if (p.httpGet?.path !== wantPath) fail(where, `${c.name}: ${name} path ${p.httpGet?.path}, want ${wantPath}`);
      if (!ports.has(p.httpGet?.port)) fail(where, `${c.name}: ${name} port ${p.httpGet?.port} is not a container port`);
    };
    probe("readinessProbe", c.readinessProbe, "/readyz");
    probe("livenessProbe", c.livenessProbe, "/healthz");
    if (!c.resources?.requests || !c.resources?.limits) fail(where, `${c.name}: resources need requests and limits`);
    if (!c.lifecycle?.preStop) fail(where, `${c.name}: no preStop hook`);
    for (const vm of c.volumeMounts || []) {
      if (!(spec.template.spec.volumes || []).some((v) => v.name === vm.name)) fail(where, `${c.name}: volumeMount ${vm.name} has no volume`);
    }
    for (const v of spec.template.spec.volumes || []) {
      if (v.configMap && !cms.some((o) => o.obj.metadata.name === v.configMap.name)) fail(where, `volume ${v.name}: ConfigMap ${v.configMap.name} not defined`);
    }
  }
  if (!(spec.template.spec.terminationGracePeriodSeconds > 0)) fail(where, "terminationGracePeriodSeconds missing");
  for (const { where: sw, obj: svc } of byKind("Service")) {
    for (const [k, v] of Object.entries(svc.spec.selector || {})) if (labels[k] !== v) fail(sw, `selector ${k}=${v} selects no pod of ${obj.metadata.name}`);
  }
  for (const { where: hw, obj: hpa } of byKind("HorizontalPodAutoscaler")) {
    const t = hpa.spec.scaleTargetRef;
    if (t.kind === "Deployment" && t.name !== obj.metadata.name) fail(hw, `scaleTargetRef ${t.name} is not the Deployment ${obj.metadata.name}`);
  }
}

if (failures.length) {
  for (const f of failures) console.error(`FAIL ${f}`);
  process.exit(1);
}
console.log(`${objects.length} Kubernetes objects valid`);
