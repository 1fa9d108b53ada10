"""Render a kustomization the way ``kubectl kustomize`` does, for the features deploy/k8s uses.

CI has no kustomize binary, so deploy/check renders the overlays with this and validates the result;
where ``kubectl`` is on the machine it also renders them with ``kubectl kustomize`` and fails when the two
disagree, which keeps this renderer honest. The kustomization files stay plain kustomize syntax, so
``kubectl apply -k deploy/k8s/overlays/prod`` applies exactly what was checked.

Supported, and nothing else (an unknown field stops the render instead of being dropped):
``resources`` (files and directories), ``components`` (``kind: Component``), ``namespace``, ``images``,
and ``patches`` (a file or an inline patch, strategic-merge or JSON 6902, with an optional ``target``).
Strategic merge follows Kubernetes for the lists deploy/k8s patches (containers, env, volumes,
volumeMounts, ports merge by their key; ``$patch: delete`` removes an entry; ``null`` removes a field);
other lists, and every list of a custom resource, are replaced whole.

    python deploy/k8s/render.py build deploy/k8s/overlays/prod     # the manifests, on stdout
    python deploy/k8s/render.py rules deploy/prometheus/alerts.yml  # alerts.yml as a PrometheusRule
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_FIELDS = {"apiVersion", "kind", "metadata", "resources", "components", "namespace", "images", "patches"}
#: kinds that have no namespace (kustomize's namespace transformer leaves them alone)
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
#: the API groups whose objects strategic merge knows the list keys of; anything else is a custom resource
BUILT_IN_GROUPS = {
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
}
#: list field name -> the key its entries merge on (Kubernetes' patchMergeKey for these fields)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",  # a Service's ports merge on "port": see _merge_list
    "imagePullSecrets": "name",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class RenderError(Exception):
    """The kustomization asks for something this renderer does not do, or is wrong."""


def build(directory: Path) -> list[Resource]:
    """The resources a kustomization (or component) directory produces, in input order."""
    return _build(directory.resolve(), expect_component=False)


def _build(
    directory: Path, *, expect_component: bool, inherited: list[Resource] | None = None
) -> list[Resource]:
    kustomization = _read_kustomization(directory)
    kind = kustomization.get("kind", "Kustomization")
    if expect_component != (kind == "Component"):
        wanted = "Component" if expect_component else "Kustomization"
        raise RenderError(f"{directory}: kind {kind} where a {wanted} is needed")
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise RenderError(f"{directory}: fields this renderer does not support: {sorted(unknown)}")
    resources = list(inherited or [])
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources.extend(_build(path, expect_component=False) if path.is_dir() else _load_documents(path))
    _check_unique(resources, directory)
    for entry in kustomization.get("components", []):
        resources = _build((directory / entry).resolve(), expect_component=True, inherited=resources)
    for patch in kustomization.get("patches", []):
        _apply_patch_entry(resources, patch, directory)
    for image in kustomization.get("images", []):
        _set_image(resources, image)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return resources


def _read_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            loaded = yaml.safe_load((directory / name).read_text())
            if not isinstance(loaded, dict):
                raise RenderError(f"{directory / name}: not a mapping")
            return loaded
    raise RenderError(f"{directory}: no kustomization file")


def _load_documents(path: Path) -> list[Resource]:
    if not path.is_file():
        raise RenderError(f"{path}: no such file")
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for document in documents:
        if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= document.keys():
            raise RenderError(f"{path}: a document without apiVersion, kind and metadata")
    return documents


def _identity(resource: Resource) -> tuple[str, str, str, str]:
    group = resource["apiVersion"].rpartition("/")[0]
    meta = resource.get("metadata", {})
    return group, resource["kind"], meta.get("namespace", ""), meta.get("name", "")


def _check_unique(resources: list[Resource], where: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for resource in resources:
        identity = _identity(resource)
        if identity in seen:
            raise RenderError(f"{where}: {identity} appears twice")
        seen.add(identity)


# --- patches ------------------------------------------------------------------------------------------


def _apply_patch_entry(resources: list[Resource], entry: dict[str, Any], directory: Path) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown or ("path" in entry) == ("patch" in entry):
        raise RenderError(f"{directory}: a patch needs one of path and patch, and maybe a target: {entry}")
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(documents) > 1:  # several strategic-merge patches in one file, each for the resource it names
        if "target" in entry:
            raise RenderError(f"{directory}: a file of several patches cannot have a target: {entry}")
        for document in documents:
            _apply_patch_entry(resources, {"patch": yaml.safe_dump(document)}, directory)
        return
    body = documents[0] if documents else None
    if isinstance(body, list):  # JSON 6902: a list of operations, for the resources the target selects
        if "target" not in entry:
            raise RenderError(f"{directory}: a JSON 6902 patch needs a target")
        targets = _select(resources, entry["target"])
        for resource in targets:
            _json6902(resource, body)
        return
    if not isinstance(body, dict):
        raise RenderError(f"{directory}: a patch is a mapping or a list of operations")
    if "target" in entry:
        targets = _select(resources, entry["target"])
    else:
        want = (body["apiVersion"].rpartition("/")[0], body["kind"], body["metadata"]["name"])
        targets = [r for r in resources if (*_identity(r)[0:2], _identity(r)[3]) == want]
    if not targets:
        raise RenderError(f"{directory}: patch {entry} matches no resource")
    for resource in targets:
        custom = resource["apiVersion"].rpartition("/")[0] not in BUILT_IN_GROUPS
        patch = copy.deepcopy(body)
        if "target" in entry:  # the patch's own kind and name need not match: keep the target's
            patch.pop("apiVersion", None)
            patch.pop("kind", None)
            patch.get("metadata", {}).pop("name", None)
        merged = _merge(resource, patch, custom=custom)
        resource.clear()
        resource.update(merged)


def _select(resources: list[Resource], target: dict[str, Any]) -> list[Resource]:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise RenderError(f"target fields this renderer does not support: {sorted(unknown)}")
    chosen = []
    for resource in resources:
        group, kind, namespace, name = _identity(resource)
        version = resource["apiVersion"].rpartition("/")[2]
        wanted = {"group": group, "version": version, "kind": kind, "name": name, "namespace": namespace}
        if all(wanted[field] == value for field, value in target.items()):
            chosen.append(resource)
    if not chosen:
        raise RenderError(f"target {target} matches no resource")
    return chosen


def _merge(base: Any, patch: Any, *, custom: bool, field: str = "") -> Any:
    """Kubernetes strategic merge of ``patch`` into ``base`` (both left untouched)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = _merge(merged[key], value, custom=custom, field=key)
            else:
                merged[key] = _strip_directives(copy.deepcopy(value))
        return merged
    if isinstance(base, list) and isinstance(patch, list) and not custom and field in MERGE_KEYS:
        return _merge_list(base, patch, MERGE_KEYS[field])
    return _strip_directives(copy.deepcopy(patch))


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    if key == "containerPort" and patch and all(isinstance(i, dict) and "port" in i for i in patch):
        key = "port"
    merged = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise RenderError(f"a strategic-merge list entry without its merge key {key!r}: {item}")
        directive = item.get("$patch")
        if directive not in (None, "delete"):
            raise RenderError(f"$patch: {directive} is not supported")
        index = next((i for i, old in enumerate(merged) if old.get(key) == item[key]), None)
        if directive == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_strip_directives(copy.deepcopy(item)))
        else:
            merged[index] = _merge(merged[index], item, custom=False)
    return merged


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if k != "$patch" and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _json6902(resource: Resource, operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not parts or op not in ("add", "replace", "remove", "test"):
            raise RenderError(f"unsupported JSON 6902 operation {operation}")
        parent: Any = resource
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                parent[index] = copy.deepcopy(operation["value"])
            elif op == "remove":
                del parent[index]
            elif parent[index] != operation["value"]:
                raise RenderError(f"JSON 6902 test failed at {path}: {parent[index]!r}")
        elif op in ("add", "replace"):
            if op == "replace" and last not in parent:
                raise RenderError(f"JSON 6902 replace of a missing {path}")
            parent[last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del parent[last]
        elif parent.get(last) != operation["value"]:
            raise RenderError(f"JSON 6902 test failed at {path}: {parent.get(last)!r}")


# --- images -------------------------------------------------------------------------------------------


def _set_image(resources: list[Resource], image: dict[str, Any]) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown or "name" not in image:
        raise RenderError(f"images entry not supported: {image}")
    for resource in resources:
        if resource["kind"] not in POD_TEMPLATE_KINDS:
            continue
        pod = resource["spec"]["template"]["spec"]
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, tag = _split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{name}:{image['newTag']}"
            else:
                container["image"] = f"{name}{tag}"


def _split_image(reference: str) -> tuple[str, str]:
    """``registry:5000/app:1.2`` -> (``registry:5000/app``, ``:1.2``); a digest stays with the tag part."""
    if "@" in reference:
        name, _, digest = reference.partition("@")
        return name, "@" + digest
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon:]
    return reference, ""


# --- PrometheusRule from alerts.yml -------------------------------------------------------------------


def prometheus_rule(alerts: Path) -> Resource:
    """deploy/prometheus/alerts.yml wrapped as the Prometheus operator's PrometheusRule."""
    groups = yaml.safe_load(alerts.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "jobsvc", "labels": {"app.kubernetes.io/name": "jobsvc"}},
        "spec": {"groups": groups},
    }


RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `python deploy/k8s/render.py rules
# deploy/prometheus/alerts.yml`: edit alerts.yml, then regenerate; deploy/check fails when they differ.
# kube-prometheus-stack selects PrometheusRules by its release label: add `release: <your release>` in
# your overlay, or set ruleSelectorNilUsesHelmValues=false.
"""


def dump(resources: list[Resource]) -> str:
    return yaml.safe_dump_all(resources, sort_keys=False, default_flow_style=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="render a kustomization directory to stdout")
    build_parser.add_argument("directory", type=Path)
    rules_parser = commands.add_parser("rules", help="print alerts.yml as a PrometheusRule")
    rules_parser.add_argument("alerts", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            sys.stdout.write(dump(build(args.directory)))
        else:
            sys.stdout.write(RULE_HEADER + dump([prometheus_rule(args.alerts)]))
    except (RenderError, OSError, KeyError, yaml.YAMLError) as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
