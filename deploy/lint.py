"""The deploy checks that no off-the-shelf tool makes: run by deploy/check, one subcommand per artefact.

    python deploy/lint.py k8s         # render every overlay, validate it (Kubernetes schemas, CRD schemas)
                                      # and hold it to the rules below; compare with `kubectl kustomize`
    python deploy/lint.py dashboard   # deploy/grafana/jobsvc.json: panels, variables, metric names
    python deploy/lint.py alerts      # deploy/prometheus/alerts.yml: metric names, runbooks, tests
    python deploy/lint.py compose     # deploy/compose.yaml: compose-spec schema and the project's rules
    python deploy/lint.py dockerfile  # deploy/Dockerfile: pinned bases, non-root, no remote ADD

Each prints what it checked and exits 1 with every problem found (not only the first).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
sys.path.insert(0, str(DEPLOY / "k8s"))
import render  # noqa: E402  (deploy/k8s/render.py)

#: what GET /metrics exposes (service/api/metrics.py), with the series names Prometheus stores
COUNTERS = ("jobsvc_jobs_submitted", "jobsvc_jobs_finished", "jobsvc_job_retries")
HISTOGRAMS = (
    "jobsvc_job_run_seconds",
    "jobsvc_job_queue_wait_seconds",
    "jobsvc_http_request_duration_seconds",
)
GAUGES = (
    "jobsvc_queue_jobs",
    "jobsvc_queue_oldest_ready_age_seconds",
    "jobsvc_queue_paused",
    "jobsvc_dead_letters",
    "jobsvc_workers",
    "jobsvc_tenant_usage",
    "jobsvc_tenant_limit",
)
METRICS = frozenset(
    [f"{c}_total" for c in COUNTERS]
    + [f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")]
    + list(GAUGES)
)
#: Prometheus' own series an alert may use besides jobsvc's
PROMETHEUS_SERIES = frozenset({"up"})
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
}
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|API_KEY|REDIS_URL", re.I)


class Problems:
    """Collects what is wrong, so that one run reports all of it."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.checked = 0

    def check(self, ok: bool, message: str) -> None:
        self.checked += 1
        if not ok:
            self.found.append(message)

    def finish(self, what: str) -> int:
        for message in self.found:
            print(f"  FAIL {message}")
        verdict = f"{len(self.found)} problem(s)" if self.found else "ok"
        print(f"{what}: {self.checked} checks, {verdict}")
        return 1 if self.found else 0


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (parsing it: a syntax error raises)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name or "")

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def check_promql(problems: Problems, expr: str, where: str, allowed: frozenset[str]) -> None:
    try:
        names = metric_names(expr)
    except Exception as exc:  # the parser raises its own ValueError-like types
        problems.check(False, f"{where}: does not parse: {exc}")
        return
    problems.check(bool(names), f"{where}: selects no metric")
    unknown = names - allowed
    problems.check(not unknown, f"{where}: unknown metrics {sorted(unknown)}")


# --- Kubernetes ---------------------------------------------------------------------------------------


def rendered_variants() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each overlay, plus prod with the prepared Sentinel component (composed in a scratch directory)."""
    for overlay in OVERLAYS:
        yield overlay, render.build(DEPLOY / "k8s" / "overlays" / overlay)
    with tempfile.TemporaryDirectory() as scratch:
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [str(DEPLOY / "k8s" / "overlays" / "prod")],
            "components": [str(DEPLOY / "k8s" / "components" / "redis-sentinel")],
        }
        (Path(scratch) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        yield "prod+redis-sentinel", render.build(Path(scratch))


def pod_specs(resources: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in resources:
        if resource["kind"] in render.POD_TEMPLATE_KINDS:
            yield f"{resource['kind']}/{resource['metadata']['name']}", resource["spec"]["template"]["spec"]


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    if len(matches) != 1:
        raise SystemExit(f"expected one {kind}/{name}, found {len(matches)}")
    return matches[0]


def lint_k8s() -> int:
    import kubernetes_validate

    problems = Problems()
    schemas = {
        key: json.loads((DEPLOY / "k8s" / "schemas" / f).read_text()) for key, f in CRD_SCHEMAS.items()
    }
    for variant, resources in rendered_variants():
        print(f"  {variant}: {len(resources)} resources")
        for resource in resources:
            where = f"{variant}: {resource['kind']}/{resource['metadata']['name']}"
            key = (resource["apiVersion"], resource["kind"])
            if key in schemas:
                errors = sorted(
                    jsonschema.Draft202012Validator(schemas[key]).iter_errors(resource), key=lambda e: e.path
                )
                problems.check(not errors, f"{where}: {[f'{list(e.path)}: {e.message}' for e in errors]}")
                continue
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(resource, version, strict=True)
                    problems.check(True, where)
                except kubernetes_validate.ValidationError as exc:
                    problems.check(
                        False, f"{where} (Kubernetes {version}): {exc.message} at {list(exc.path)}"
                    )
                except kubernetes_validate.SchemaNotFoundError as exc:
                    problems.check(False, f"{where}: no schema: {exc}")
            problems.check(resource["kind"] != "Secret", f"{where}: a Secret in the manifests")
        check_pods(problems, variant, resources)
        check_workers(problems, variant, resources)
        check_scaledobject(problems, variant, find(resources, "ScaledObject", "jobsvc-worker"))
    check_rule_sync(problems)
    compare_with_kubectl(problems)
    return problems.finish("k8s")


def check_pods(problems: Problems, variant: str, resources: list[dict[str, Any]]) -> None:
    for name, pod in pod_specs(resources):
        where = f"{variant}: {name}"
        pod_security = pod.get("securityContext", {})
        problems.check(pod_security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true")
        problems.check(
            pod.get("automountServiceAccountToken") is False, f"{where}: mounts a service account token"
        )
        for container in pod["containers"]:
            at = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            problems.check(
                security.get("readOnlyRootFilesystem") is True, f"{at}: root filesystem not read-only"
            )
            problems.check(
                security.get("allowPrivilegeEscalation") is False, f"{at}: may escalate privileges"
            )
            problems.check(
                security.get("capabilities", {}).get("drop") == ["ALL"], f"{at}: does not drop ALL"
            )
            resources_ = container.get("resources", {})
            problems.check("memory" in resources_.get("limits", {}), f"{at}: no memory limit")
            problems.check({"cpu", "memory"} <= resources_.get("requests", {}).keys(), f"{at}: no requests")
            image = container["image"]
            tag = render._split_image(image)[1]
            problems.check(tag not in ("", ":latest"), f"{at}: image {image} not pinned to a version")
            for env in container.get("env", []):
                problems.check(
                    not (SECRET_NAME.search(env["name"]) and "value" in env),
                    f"{at}: {env['name']} has a plain value: it belongs in a Secret (secretKeyRef)",
                )


def check_workers(problems: Problems, variant: str, resources: list[dict[str, Any]]) -> None:
    """The worker's grace period and liveness probe against the settings they depend on."""
    config = find(resources, "ConfigMap", "jobsvc-config")["data"]
    worker = find(resources, "Deployment", "jobsvc-worker")["spec"]["template"]["spec"]
    grace = float(config["JOBSVC_WORKER_SHUTDOWN_GRACE_S"])
    termination = worker["terminationGracePeriodSeconds"]
    problems.check(
        termination >= grace + 10,
        f"{variant}: worker terminationGracePeriodSeconds {termination} < JOBSVC_WORKER_SHUTDOWN_GRACE_S "
        f"{grace:g} + 10 s",
    )
    interval = arq_health_check_interval(float(config["JOBSVC_WORKER_HEARTBEAT_S"]))
    liveness = worker["containers"][0].get("livenessProbe", {})
    window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    problems.check(
        window > interval + 1,
        f"{variant}: worker liveness fails after {window} s, sooner than ARQ's health key lapses "
        f"({interval + 1:g} s): a healthy worker would be restarted",
    )
    problems.check(
        dig(liveness, "exec", "command") == ["arq", "--check", "worker_settings.WorkerSettings"],
        f"{variant}: the worker's liveness probe is not ARQ's check",
    )
    api = find(resources, "Deployment", "jobsvc-api")["spec"]["template"]["spec"]["containers"][0]
    problems.check(
        dig(api, "livenessProbe", "httpGet", "path") == "/healthz", f"{variant}: API liveness not /healthz"
    )
    readiness = dig(api, "readinessProbe", "httpGet", "path")
    scaled = find(resources, "ScaledObject", "jobsvc-worker")["spec"]
    # /readyz needs a live worker: with workers at zero it would take every API pod out of its Service
    expected = "/healthz" if scaled.get("minReplicaCount", 1) == 0 else "/readyz"
    problems.check(readiness == expected, f"{variant}: API readiness is {readiness}, expected {expected}")


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a key is missing."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


_intervals: dict[float, float] = {}


def arq_health_check_interval(heartbeat_s: float) -> float:
    """``worker_settings.WorkerSettings.health_check_interval`` for this heartbeat, from the module itself."""
    if heartbeat_s not in _intervals:
        env = {
            **os.environ,
            "JOBSVC_WORKER_HEARTBEAT_S": str(heartbeat_s),
            "JOBSVC_ENVIRONMENT": "development",
        }
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import worker_settings; print(worker_settings.WorkerSettings.health_check_interval)",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        _intervals[heartbeat_s] = float(out.strip().splitlines()[-1])
    return _intervals[heartbeat_s]


def check_scaledobject(problems: Problems, variant: str, scaled: dict[str, Any]) -> None:
    spec = scaled["spec"]
    where = f"{variant}: ScaledObject"
    problems.check(spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"], f"{where}: min > max")
    triggers = {t.get("name"): t for t in spec["triggers"]}
    problems.check({"queue-wait", "ready-depth"} <= triggers.keys(), f"{where}: triggers {sorted(triggers)}")
    for name, trigger in triggers.items():
        metadata = trigger["metadata"]
        if trigger["type"] != "prometheus":
            continue
        problems.check(
            {"serverAddress", "query", "threshold"} <= metadata.keys(), f"{where} {name}: missing metadata"
        )
        check_promql(problems, metadata.get("query", ""), f"{where} {name}", METRICS)
        if "fallback" in spec:  # KEDA supports fallback only for AverageValue triggers
            problems.check(
                trigger.get("metricType", "AverageValue") == "AverageValue", f"{where} {name}: fallback"
            )
        if spec.get("minReplicaCount", 1) == 0:
            problems.check(
                "activationThreshold" in metadata, f"{where} {name}: no activationThreshold at zero"
            )


def check_rule_sync(problems: Problems) -> None:
    committed = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text())
    generated = render.prometheus_rule(DEPLOY / "prometheus" / "alerts.yml")
    problems.check(
        committed == generated,
        "deploy/k8s/base/prometheusrule.yaml differs from alerts.yml: run `python deploy/k8s/render.py "
        "rules deploy/prometheus/alerts.yml > deploy/k8s/base/prometheusrule.yaml`",
    )


def compare_with_kubectl(problems: Problems) -> None:
    """Where kubectl is installed, its built-in kustomize must render every overlay as render.py does."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("  kubectl not installed: render.py is not compared with `kubectl kustomize` on this machine")
        return
    for overlay in (*OVERLAYS, "../base"):
        directory = DEPLOY / "k8s" / "overlays" / overlay
        theirs = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
        )
        if theirs.returncode != 0:
            problems.check(False, f"kubectl kustomize {overlay}: {theirs.stderr.strip()}")
            continue

        def by_identity(docs: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
            return {render._identity(d): d for d in docs}

        ours = by_identity(render.build(directory))
        kubectls = by_identity([d for d in yaml.safe_load_all(theirs.stdout) if d])
        differing = sorted(k for k in ours.keys() | kubectls.keys() if ours.get(k) != kubectls.get(k))
        problems.check(not differing, f"render.py and kubectl kustomize differ on {overlay}: {differing}")
    print("  render.py's output equals `kubectl kustomize` for every overlay")


# --- Grafana dashboard --------------------------------------------------------------------------------


def lint_dashboard() -> int:
    problems = Problems()
    dashboard = json.loads((DEPLOY / "grafana" / "jobsvc.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables.get("datasource", {})
    problems.check(
        source.get("type") == "datasource" and source.get("query") == "prometheus",
        "no Prometheus data source variable named datasource",
    )
    ids: set[int] = set()
    panels = [p for p in dashboard["panels"] for p in [p, *p.get("panels", [])]]
    expressions = 0
    for panel in panels:
        problems.check(panel["id"] not in ids, f"panel id {panel['id']} twice")
        ids.add(panel["id"])
        if panel["type"] == "row":
            continue
        where = f"panel {panel['title']!r}"
        problems.check(
            panel.get("datasource", {}).get("uid") == "${datasource}", f"{where}: not on $datasource"
        )
        problems.check(bool(panel.get("targets")), f"{where}: no query")
        for target in panel.get("targets", []):
            expressions += 1
            check_promql(problems, grafana_to_promql(target["expr"]), f"{where} {target['refId']}", METRICS)
    for name in ("job", "queue"):
        query = variables[name]["query"]["query"]
        inner = re.fullmatch(r"label_values\((.+), \w+\)", query)
        problems.check(inner is not None, f"variable {name}: {query}")
        if inner:
            check_promql(problems, grafana_to_promql(inner.group(1)), f"variable {name}", METRICS)
    covered = {
        m for p in panels for t in p.get("targets", []) for m in metric_names(grafana_to_promql(t["expr"]))
    }
    every = {m for m in METRICS if not m.endswith(("_sum", "_count"))} - {
        "jobsvc_http_request_duration_seconds_count"
    }
    missing = {m.removesuffix("_bucket") for m in every - covered}
    problems.check(not missing, f"metrics no panel shows: {sorted(missing)}")
    print(f"  {len(panels)} panels, {expressions} expressions")
    return problems.finish("dashboard")


def grafana_to_promql(expr: str) -> str:
    """A panel's query as Prometheus receives it, with the dashboard's variables given example values."""
    for variable, value in (("$__rate_interval", "1m"), ("$job", ".*"), ("$queue", ".*")):
        expr = expr.replace(variable, value)
    return expr


# --- alert rules --------------------------------------------------------------------------------------


def lint_alerts() -> int:
    problems = Problems()
    rules = [
        r
        for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    ]
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yml").read_text())["tests"]
    anchors = markdown_anchors(ROOT / "docs" / "OPERATIONS.md")
    for rule in rules:
        name = rule["alert"]
        check_promql(problems, rule["expr"], name, METRICS | PROMETHEUS_SERIES)
        problems.check(rule.get("labels", {}).get("severity") in ("warning", "critical"), f"{name}: severity")
        runbook = rule.get("annotations", {}).get("runbook_url", "")
        path, _, anchor = runbook.partition("#")
        problems.check(
            path == "docs/OPERATIONS.md", f"{name}: runbook_url {runbook!r} not in docs/OPERATIONS.md"
        )
        problems.check(anchor in anchors, f"{name}: no heading #{anchor} in docs/OPERATIONS.md")
        cases = [c for t in tests for c in t["alert_rule_test"] if c["alertname"] == name]
        problems.check(any(c["exp_alerts"] for c in cases), f"{name}: no test where it fires")
        problems.check(any(not c["exp_alerts"] for c in cases), f"{name}: no test where it stays quiet")
    print(f"  {len(rules)} alerts, each with a runbook and tests that fire and do not")
    return problems.finish("alerts")


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for line in path.read_text().splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


# --- compose ------------------------------------------------------------------------------------------


def lint_compose() -> int:
    problems = Problems()
    path = DEPLOY / "compose.yaml"
    compose = yaml.safe_load(path.read_text())
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(compose))
    problems.check(not errors, f"compose-spec: {[f'{list(e.path)}: {e.message}' for e in errors]}")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text()))
    problems.check(used <= documented, f"variables not in deploy/env.example: {sorted(used - documented)}")
    services = compose["services"]
    for name, service in services.items():
        problems.check(service.get("restart") in ("unless-stopped", "always"), f"{name}: no restart policy")
        image = service.get("image", "")
        problems.check(
            re.search(r":v?\d+(\.\d+)+$", image) is not None,
            f"{name}: image {image!r} not pinned to a version",
        )
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                problems.check((DEPLOY / source).exists(), f"{name}: mounts missing {source}")
    command = " ".join(services["redis"]["command"])
    for needed in (
        "--appendonly yes",
        "--appendfsync everysec",
        "--maxmemory ",
        "--maxmemory-policy noeviction",
    ):
        problems.check(needed in command, f"redis: {needed.strip()} missing")
    problems.check(services["worker"].get("deploy", {}).get("replicas") == 2, "two workers")
    environment = services["api"]["environment"]
    problems.check(
        environment.get("JOBSVC_SMTP_HOST", "").endswith("mailpit}"), "email.send not wired to mailpit"
    )
    problems.check("mailpit" in services, "no mail catcher")
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for needed in ("prometheus.yml", "alerts.yml", "grafana/provisioning", "jobsvc.json"):
        problems.check(needed in mounts, f"{needed} not mounted")
    print(f"  {len(services)} services: {', '.join(services)}")
    return problems.finish("compose")


# --- Dockerfile ---------------------------------------------------------------------------------------


def lint_dockerfile() -> int:
    problems = Problems()
    lines = logical_lines((DEPLOY / "Dockerfile").read_text())
    stages = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    problems.check(len(stages) >= 2, "not multi-stage")
    for image in stages:
        pinned = "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[\w.-]*$", image) is not None
        problems.check(pinned, f"FROM {image}: pin an exact version (x.y.z) or a digest")
        problems.check(not image.endswith(":latest"), f"FROM {image}: latest")
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    problems.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root")
    for line in lines:
        words = line.split()
        if words[0].upper() == "ADD":
            problems.check(not any("://" in w for w in words), f"ADD of a URL: {line}")
        if words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            for source in [w for w in words[1:-1] if not w.startswith("--")]:
                problems.check((ROOT / source).exists(), f"COPY {source}: not in the build context")
    print(f"  stages {stages}, user {users[-1] if users else None}")
    return problems.finish("dockerfile")


def logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


COMMANDS: dict[str, Callable[[], int]] = {
    "k8s": lint_k8s,
    "dashboard": lint_dashboard,
    "alerts": lint_alerts,
    "compose": lint_compose,
    "dockerfile": lint_dockerfile,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python deploy/lint.py {{{','.join(COMMANDS)}}}")
    sys.exit(COMMANDS[sys.argv[1]]())
