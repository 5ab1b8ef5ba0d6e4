// Validates prometheus-operator custom resources (ServiceMonitor,
// PrometheusRule) against the CRD schemas bundled in the npm package
// @kubernetes-models/prometheus-operator (offline; no cluster needed).
// Usage: node validate-crds.mjs <node_modules dir> <file.json>...
// Each file holds one object as JSON (scripts/check-deploy.sh converts the
// YAML). Exits 1 on the first invalid object, printing the schema errors.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modules, ...files] = process.argv.slice(2);
const base = path.join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
const kinds = {};
for (const kind of ["ServiceMonitor", "PrometheusRule"]) {
  kinds[kind] = (await import(pathToFileURL(path.join(base, `${kind}.js`)).href))[kind];
}
let failed = false;
for (const file of files) {
  const obj = JSON.parse(readFileSync(file, "utf8"));
  const Model = kinds[obj.kind];
  if (!Model || obj.apiVersion !== "monitoring.coreos.com/v1") {
    console.error(`${file}: no bundled schema for ${obj.apiVersion}/${obj.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`${file}: ${obj.kind}/${obj.metadata?.name} valid`);
  } catch (err) {
    console.error(`${file}: ${obj.kind} invalid: ${err.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
