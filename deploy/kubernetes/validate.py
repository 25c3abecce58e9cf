"""Renders Gatehouse's Kubernetes set-up and checks every object it produces (run through validate.sh).

1. Rendering. Every kustomization under deploy/kubernetes (base, overlays/*) is rendered by the real kustomize
   (`kustomize build`, or `kubectl kustomize`, which embeds it) when either is installed, and always by the small
   fallback renderer below. With both, their outputs must be the same objects: the fallback is checked against
   kustomize on every run that has it, so it can stand in on a machine that lacks it. The fallback understands
   only what these files use (resources, components, namespace, images, JSON 6902 patches aimed at a kind and a
   name) and fails on any other kustomization field instead of rendering something different.
2. Schemas. Every rendered object is validated strictly (unknown fields fail) against the Kubernetes JSON schemas
   that the kubernetes-validate package ships (offline), for the oldest Kubernetes these files support
   (MIN_KUBERNETES: the preStop `sleep` action) and the newest the package knows. A kind without a schema fails,
   except the Prometheus Operator's ServiceMonitor (a CRD), which is checked against SERVICE_MONITOR_SCHEMA below:
   the CRD's fields for what a ServiceMonitor of ours may use, unknown ones refused.
3. Cross-references schemas cannot see: Services, PodDisruptionBudgets and ServiceMonitors select pods or
   Services that exist, named ports exist, referenced ConfigMaps, Secrets and keys exist, the autoscaled
   Deployment sets no replicas and requests CPU, every container has probes on /readyz or /healthz, resources,
   a locked-down securityContext and a termination grace that covers the drain, and every GATEHOUSE_* variable is
   one that src/cli.rs declares. The Dockerfile's exposed ports and user match the manifests.

Usage: python validate.py [--renderer auto|fallback] [--print OVERLAY]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, latest_version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# The preStop `sleep` action (the image has no shell for `exec: sleep`) is on by default from 1.30.
MIN_KUBERNETES = "1.30.0"
KINDS_WITHOUT_NAMESPACE = {"Namespace"}
# Kinds whose namespace is only metadata.namespace (kustomize rewrites more in RBAC bindings and webhooks, which
# the fallback does not implement).
FALLBACK_KINDS = {
    "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Deployment", "StatefulSet", "DaemonSet",
    "Job", "CronJob", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy",
    "ServiceMonitor",
}
PROBE_PATHS = {"/readyz", "/healthz"}
# pingora's runtime shutdown after the grace period (DataPlaneSettings::DEFAULT_SHUTDOWN_TIMEOUT).
DATA_PLANE_RUNTIME_SHUTDOWN_SECONDS = 5
# actix's default shutdown timeout for requests in flight (the control plane sets none).
CONTROL_PLANE_SHUTDOWN_SECONDS = 30

# --- ServiceMonitor (monitoring.coreos.com/v1): field names and patterns from the Prometheus Operator's CRD -----
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["port"]}, {"required": ["targetPort"]}],
    "properties": {
        "port": {"type": "string"},
        "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "path": {"type": "string", "pattern": "^/"},
        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
        "interval": {"type": "string", "pattern": DURATION},
        "scrapeTimeout": {"type": "string", "pattern": DURATION},
        "honorLabels": {"type": "boolean"},
        "honorTimestamps": {"type": "boolean"},
        "trackTimestampsStaleness": {"type": "boolean"},
        "followRedirects": {"type": "boolean"},
        "enableHttp2": {"type": "boolean"},
        "filterRunning": {"type": "boolean"},
        "params": {"type": "object"},
        "relabelings": {"type": "array", "items": {"type": "object"}},
        "metricRelabelings": {"type": "array", "items": {"type": "object"}},
        "tlsConfig": {"type": "object"},
        "authorization": {"type": "object"},
        "basicAuth": {"type": "object"},
        "oauth2": {"type": "object"},
        "proxyUrl": {"type": "string"},
    },
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {"type": "array", "minItems": 1, "items": ENDPOINT},
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer", "minimum": 0},
                "targetLimit": {"type": "integer", "minimum": 0},
                "scrapeClass": {"type": "string"},
            },
        },
    },
}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA}


class Failure(Exception):
    pass


# --- Rendering ---------------------------------------------------------------------------------------------------

def load_docs(path: Path) -> list[dict]:
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def kustomization_file(directory: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            return directory / name
    raise Failure(f"{directory}: no kustomization.yaml")


def key(obj: dict) -> tuple:
    meta = obj.get("metadata", {})
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name"))


def fallback_render(directory: Path) -> list[dict]:
    """kustomize's output for the subset of kustomization fields these files use; anything else is refused."""
    objects = render_level(directory, expect_kind="Kustomization", objects=[])
    seen = set()
    for obj in objects:
        if key(obj) in seen:
            raise Failure(f"{directory}: {key(obj)} appears twice")
        seen.add(key(obj))
    return objects


def render_level(directory: Path, expect_kind: str, objects: list[dict]) -> list[dict]:
    path = kustomization_file(directory)
    spec = yaml.safe_load(path.read_text()) or {}
    allowed = {"apiVersion", "kind", "resources", "components", "namespace", "images", "patches"}
    unknown = set(spec) - allowed
    if unknown:
        raise Failure(f"{path}: the fallback renderer does not implement {sorted(unknown)}; install kustomize "
                      "(or kubectl) or keep to the fields it knows")
    if spec.get("kind", "Kustomization") != expect_kind:
        raise Failure(f"{path}: expected kind {expect_kind}, found {spec.get('kind')}")
    # A component adds to and transforms what its parent accumulated; a kustomization starts afresh.
    accumulated = objects if expect_kind == "Component" else []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            accumulated.extend(render_level(target, "Kustomization", []))
        elif target.is_file():
            accumulated.extend(load_docs(target))
        else:
            raise Failure(f"{path}: resource {entry} does not exist")
    for entry in spec.get("components", []):
        accumulated = render_level((directory / entry).resolve(), "Component", accumulated)
    for obj in accumulated:
        if obj.get("kind") not in FALLBACK_KINDS:
            raise Failure(f"{path}: the fallback renderer does not know how kustomize treats kind {obj.get('kind')}")
    if "namespace" in spec:
        apply_namespace(path, accumulated, spec["namespace"])
    for image in spec.get("images", []):
        apply_image(path, accumulated, image)
    for patch in spec.get("patches", []):
        apply_patch(path, directory, accumulated, patch)
    return accumulated


def apply_namespace(path: Path, objects: list[dict], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] in KINDS_WITHOUT_NAMESPACE:
            if obj["metadata"]["name"] != namespace:
                raise Failure(f"{path}: a Namespace named other than `namespace:` is not implemented by the fallback")
            continue
        obj.setdefault("metadata", {})["namespace"] = namespace


def pod_specs(obj: dict) -> list[dict]:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def split_image(image: str) -> tuple[str, str | None, str | None]:
    name, digest = image.split("@", 1) if "@" in image else (image, None)
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest


def apply_image(path: Path, objects: list[dict], image: dict) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise Failure(f"{path}: images fields {sorted(unknown)} are not implemented by the fallback")
    for obj in objects:
        for pod in pod_specs(obj):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, tag, digest = split_image(container["image"])
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                # As kustomize does: a digest without a newTag drops the old tag.
                if "digest" in image:
                    tag, digest = (str(image["newTag"]) if "newTag" in image else None), image["digest"]
                elif "newTag" in image:
                    tag = str(image["newTag"])
                container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def apply_patch(path: Path, directory: Path, objects: list[dict], patch: dict) -> None:
    target = patch.get("target") or {}
    if set(patch) - {"target", "patch", "path"} or set(target) - {"kind", "name"} or not {"kind", "name"} <= set(target):
        raise Failure(f"{path}: the fallback implements only patches with a target of exactly kind and name")
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise Failure(f"{path}: only JSON 6902 patches (a list of operations) are implemented by the fallback")
    matched = [o for o in objects if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
    if not matched:
        raise Failure(f"{path}: patch target {target} matches nothing")
    for obj in matched:
        for operation in operations:
            json_patch(obj, operation, path)


def json_patch(document: dict, operation: dict, path: Path) -> None:
    """RFC 6902 add, replace, remove and test."""
    op, pointer = operation["op"], operation["path"]
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    parent = document
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
        elif op == "test":
            if parent[index] != operation["value"]:
                raise Failure(f"{path}: test failed at {pointer}")
        else:
            raise Failure(f"{path}: JSON patch op {op} is not implemented by the fallback")
        return
    if op == "add":
        parent[last] = copy.deepcopy(operation["value"])
    elif op == "replace":
        if last not in parent:
            raise Failure(f"{path}: replace of missing {pointer}")
        parent[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del parent[last]
    elif op == "test":
        if parent.get(last) != operation["value"]:
            raise Failure(f"{path}: test failed at {pointer}")
    else:
        raise Failure(f"{path}: JSON patch op {op} is not implemented by the fallback")


def real_kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def kustomize_render(command: list[str], directory: Path) -> list[dict]:
    out = subprocess.run(command + [str(directory)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise Failure(f"{' '.join(command)} {directory} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


# --- Checks ------------------------------------------------------------------------------------------------------

def validate_schemas(objects: list[dict], where: str, errors: list[str]) -> None:
    versions = sorted({MIN_KUBERNETES, latest_version()}, key=lambda v: tuple(int(p) for p in v.split(".")))
    for obj in objects:
        label = f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        crd = CRD_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))
        if crd is not None:
            try:
                jsonschema.Draft202012Validator(crd).validate(obj)
            except jsonschema.ValidationError as e:
                errors.append(f"{label}: {'.'.join(map(str, e.path))}: {e.message} (CRD structure)")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except ValidationError as e:
                errors.append(f"{label}: {'.'.join(map(str, e.path))}: {e.message} (Kubernetes {version}, strict)")
            except SchemaNotFoundError as e:
                errors.append(f"{label}: {e.message}")


def cli_env_names() -> set[str]:
    text = (REPO / "src" / "cli.rs").read_text()
    names = set(re.findall(r'env\s*=\s*"(GATEHOUSE_[A-Z0-9_]+)"', text))
    if len(names) < 10:
        raise Failure("src/cli.rs: could not read the GATEHOUSE_* variables it declares")
    return names


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration.strip())
    if not match:
        raise Failure(f"cannot read the duration {duration!r}")
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match[2]]


def selects(selector: dict, labels: dict) -> bool:
    if "matchExpressions" in selector:
        raise Failure("matchExpressions selectors are not checked; use matchLabels")
    match = selector["matchLabels"] if "matchLabels" in selector else selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def check_references(objects: list[dict], where: str, complete: bool, errors: list[str]) -> None:
    def err(message: str) -> None:
        errors.append(f"{where}: {message}")

    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    deployments = by_kind.get("Deployment", {})
    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    known_env = cli_env_names()
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}

    def secret_has(name: str, item: str) -> bool:
        secret = secrets.get(name)
        if secret is None:
            return not complete
        return item in (secret.get("stringData") or {}) or item in (secret.get("data") or {})

    for name, cm in config_maps.items():
        for variable in cm.get("data", {}):
            if variable.startswith("GATEHOUSE_") and variable not in known_env:
                err(f"ConfigMap/{name}: {variable} is not a variable src/cli.rs declares")
    for name, secret in secrets.items():
        for variable in list(secret.get("stringData") or {}) + list(secret.get("data") or {}):
            if variable.startswith("GATEHOUSE_") and variable not in known_env:
                err(f"Secret/{name}: {variable} is not a variable src/cli.rs declares")

    config = next(iter(config_maps.values()), {}).get("data", {}) if config_maps else {}
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        if not selects(spec["selector"], labels):
            err(f"Deployment/{name}: its selector does not select its own pods")
        if name in autoscaled and "replicas" in spec:
            err(f"Deployment/{name}: autoscaled, so it must not set replicas (each apply would reset them)")
        pod_security = pod.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            err(f"Deployment/{name}: runAsNonRoot must be true")
        if pod.get("automountServiceAccountToken") is not False:
            err(f"Deployment/{name}: Gatehouse does not call the Kubernetes API; do not mount a token")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "secret" in volume:
                secret_name = volume["secret"]["secretName"]
                for item in volume["secret"].get("items", []):
                    if not secret_has(secret_name, item["key"]):
                        err(f"Deployment/{name}: volume {volume['name']} needs key {item['key']} of Secret/{secret_name}")
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                err(f"Deployment/{name}: volume {volume['name']} names a ConfigMap that is not rendered")
        for container in pod["containers"]:
            cname = f"Deployment/{name} container {container['name']}"
            args = container.get("args", [])
            if args[:1] not in (["control-plane"], ["data-plane"]):
                err(f"{cname}: args must start with control-plane or data-plane, found {args}")
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for probe_kind in ("readinessProbe", "livenessProbe"):
                probe = container.get(probe_kind)
                if not probe or "httpGet" not in probe:
                    err(f"{cname}: needs an HTTP {probe_kind}")
                    continue
                get = probe["httpGet"]
                if get.get("path") not in PROBE_PATHS:
                    err(f"{cname}: {probe_kind} path {get.get('path')} is not /readyz or /healthz")
                if isinstance(get["port"], str) and get["port"] not in ports:
                    err(f"{cname}: {probe_kind} port {get['port']} is not a named container port")
            if args[:1] == ["data-plane"] and container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                err(f"{cname}: a data-plane node is ready only after its first config load: probe /readyz")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        err(f"{cname}: resources.{part}.{resource} is not set")
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                err(f"{cname}: allowPrivilegeEscalation must be false")
            if security.get("readOnlyRootFilesystem") is not True:
                err(f"{cname}: readOnlyRootFilesystem must be true")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                err(f"{cname}: capabilities must drop ALL")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    err(f"{cname}: mounts volume {mount['name']}, which the pod does not declare")
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps and complete:
                    err(f"{cname}: envFrom ConfigMap/{source['configMapRef']['name']} is not rendered")
                if "secretRef" in source and source["secretRef"]["name"] not in secrets and complete:
                    err(f"{cname}: envFrom Secret/{source['secretRef']['name']} is not rendered")
            for variable in container.get("env", []):
                if variable["name"].startswith("GATEHOUSE_") and variable["name"] not in known_env:
                    err(f"{cname}: {variable['name']} is not a variable src/cli.rs declares")
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and not secret_has(ref["name"], ref["key"]):
                    err(f"{cname}: {variable['name']} needs key {ref['key']} of Secret/{ref['name']}")
            # The drain: preStop, then SIGTERM; the kubelet kills at terminationGracePeriodSeconds.
            pre_stop = container.get("lifecycle", {}).get("preStop")
            if not pre_stop:
                err(f"{cname}: needs a preStop (endpoints drop the pod while it still serves)")
                continue
            pre_stop_seconds = pre_stop.get("sleep", {}).get("seconds", 0)
            if args[:1] == ["data-plane"]:
                grace = seconds(config.get("GATEHOUSE_SHUTDOWN_GRACE_PERIOD", "5s"))
                needed = pre_stop_seconds + grace + DATA_PLANE_RUNTIME_SHUTDOWN_SECONDS
            else:
                needed = pre_stop_seconds + CONTROL_PLANE_SHUTDOWN_SECONDS
            if pod.get("terminationGracePeriodSeconds", 30) <= needed:
                err(f"Deployment/{name}: terminationGracePeriodSeconds must exceed {needed:g} s "
                    "(preStop + the binary's drain)")

    def pods_selected(selector: dict) -> list[str]:
        return [n for n, d in deployments.items() if selects(selector, d["spec"]["template"]["metadata"]["labels"])]

    for name, service in by_kind.get("Service", {}).items():
        chosen = pods_selected(service["spec"]["selector"])
        if len(chosen) != 1:
            err(f"Service/{name}: selects Deployments {chosen}, expected exactly one")
            continue
        container_ports = {p.get("name") for c in deployments[chosen[0]]["spec"]["template"]["spec"]["containers"]
                           for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in container_ports:
                err(f"Service/{name}: targetPort {port['targetPort']} is not a port of Deployment/{chosen[0]}")
    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        chosen = pods_selected(pdb["spec"]["selector"])
        if len(chosen) != 1:
            err(f"PodDisruptionBudget/{name}: selects Deployments {chosen}, expected exactly one")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = hpa["spec"]["scaleTargetRef"]
        target = deployments.get(ref["name"]) if ref["kind"] == "Deployment" else None
        if target is None:
            err(f"HorizontalPodAutoscaler/{name}: scales {ref['kind']}/{ref['name']}, which is not rendered")
            continue
        for container in target["spec"]["template"]["spec"]["containers"]:
            if "cpu" not in container.get("resources", {}).get("requests", {}):
                err(f"HorizontalPodAutoscaler/{name}: CPU utilisation needs a CPU request on {container['name']}")
    for name, monitor in by_kind.get("ServiceMonitor", {}).items():
        chosen = [s for s in by_kind.get("Service", {}).values()
                  if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        if len(chosen) != 1:
            err(f"ServiceMonitor/{name}: selects {len(chosen)} Services, expected exactly one")
            continue
        port_names = {p.get("name") for p in chosen[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint.get("port") not in port_names:
                err(f"ServiceMonitor/{name}: port {endpoint.get('port')} is not a port of Service/"
                    f"{chosen[0]['metadata']['name']}")
            if endpoint.get("path") != "/metrics":
                err(f"ServiceMonitor/{name}: Gatehouse serves metrics at /metrics")
            if "interval" in endpoint and "scrapeTimeout" in endpoint:
                if seconds(endpoint["scrapeTimeout"]) > seconds(endpoint["interval"]):
                    err(f"ServiceMonitor/{name}: scrapeTimeout exceeds interval")


def check_dockerfile(objects: list[dict], errors: list[str]) -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    exposed = {int(p.split("/")[0]) for line in re.findall(r"(?m)^EXPOSE\s+(.+)$", text) for p in line.split()}
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    ports, run_as = set(), set()
    for obj in objects:
        for pod in pod_specs(obj):
            run_as.add(pod.get("securityContext", {}).get("runAsUser"))
            for container in pod["containers"]:
                ports |= {p["containerPort"] for p in container.get("ports", [])}
    if not ports <= exposed:
        errors.append(f"deploy/Dockerfile: EXPOSE {sorted(exposed)} lacks container ports {sorted(ports - exposed)}")
    if not users or users[-1].split(":")[0] not in {str(u) for u in run_as if u is not None}:
        errors.append(f"deploy/Dockerfile: the final USER {users[-1:] or 'none'} is not the manifests' runAsUser "
                      f"{sorted(u for u in run_as if u is not None)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renderer", choices=["auto", "fallback"], default="auto",
                        help="auto: kustomize or kubectl when installed, cross-checked with the fallback")
    parser.add_argument("--print", metavar="KUSTOMIZATION", help="print this directory's rendering and exit")
    args = parser.parse_args()
    kustomize = real_kustomize() if args.renderer == "auto" else None

    if args.print:
        directory = Path(args.print).resolve()
        objects = kustomize_render(kustomize, directory) if kustomize else fallback_render(directory)
        yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
        return 0

    targets = [HERE / "base"] + sorted(p for p in (HERE / "overlays").iterdir() if p.is_dir())
    print(f"renderer: {' '.join(kustomize) if kustomize else 'fallback only (no kustomize or kubectl found)'}; "
          f"schemas: kubernetes-validate {kubernetes_validate.__version__}, Kubernetes {MIN_KUBERNETES} and "
          f"{latest_version()}, strict")
    errors: list[str] = []
    dockerfile_objects: list[dict] = []
    for directory in targets:
        where = str(directory.relative_to(REPO))
        try:
            objects = fallback_render(directory)
            if kustomize:
                real = kustomize_render(kustomize, directory)
                ours, theirs = {key(o): o for o in objects}, {key(o): o for o in real}
                if ours != theirs:
                    for k in sorted(set(ours) | set(theirs), key=str):
                        if ours.get(k) != theirs.get(k):
                            errors.append(f"{where}: the fallback renderer and kustomize differ on {k}")
                objects = real
        except Failure as e:
            errors.append(str(e))
            continue
        complete = directory.parent.name == "overlays"
        validate_schemas(objects, where, errors)
        check_references(objects, where, complete, errors)
        dockerfile_objects = objects
        kinds = sorted({o["kind"] for o in objects})
        print(f"{where}: {len(objects)} objects ({', '.join(kinds)})")
    check_dockerfile(dockerfile_objects, errors)
    for error in errors:
        print(f"ERROR {error}")
    if errors:
        print(f"deploy/kubernetes: {len(errors)} problem(s)")
        return 1
    print("deploy/kubernetes: ok")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"ERROR {e}")
        sys.exit(1)
