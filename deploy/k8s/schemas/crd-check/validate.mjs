// deploy/check: validate the rendered custom resources (a JSON list on stdin) with @kubernetes-models'
// validators, which are generated from the KEDA and Prometheus-operator CRDs: a second, independent check
// beside the hand-written schema subsets in ../ (those reject unknown fields; these know every field).
import fs from "node:fs";
const kinds = {
  "keda.sh/v1alpha1/ScaledObject": ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "ScaledObject"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
};
const docs = JSON.parse(fs.readFileSync(0, "utf8"));
let bad = 0, seen = 0;
for (const doc of docs) {
  const entry = kinds[`${doc.apiVersion}/${doc.kind}`];
  if (!entry) continue;
  const cls = (await import(entry[0]))[entry[1]];
  seen++;
  try { new cls(doc).validate(); console.log("valid", doc.kind, doc.metadata.name); }
  catch (e) { bad++; console.log("INVALID", doc.kind, doc.metadata.name, e.message); }
}
process.exit(bad || !seen ? 1 : 0);
