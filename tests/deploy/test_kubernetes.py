"""The Kubernetes manifests, offline: every base manifest, every overlay patch and both
rendered overlays are valid for a pinned Kubernetes version under kubernetes-validate's
bundled schemas in strict mode (an unknown field fails), and what they promise holds: probes,
drain, spreading, secrets by reference, settings pocdojo knows.

The overlays are rendered by ``render`` below, which knows only what these kustomizations use
(``resources``, ``namespace``, ``images``, ``patches`` by path) and fails on anything else:
strategic-merge patches merge maps, remove keys set to null, merge lists of named items by
name and replace other lists, as kustomize does for the fields patched here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.known import known_variables

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (test extras)"
)

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = "1.33.0"
OVERLAYS = ("production", "local")
CLUSTER_SCOPED = {"Namespace"}
Manifest = dict[str, Any]


def documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def validate(manifest: Manifest, where: str) -> None:
    try:
        used = kubernetes_validate.validate(manifest, VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{where}: {manifest['kind']} {manifest['metadata']['name']}: {path}: {exc}")
    assert used == "1.33", used


def key(manifest: Manifest) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


def merge(base: Any, patch: Any) -> Any:
    """A strategic-merge patch, for maps and lists of named items."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = merge(merged[name], value)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    named = (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
        and base
    )
    if named:
        merged_list = list(base)
        for item in patch:
            at = next((i for i, old in enumerate(merged_list) if old["name"] == item["name"]), None)
            if at is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[at] = merge(merged_list[at], item)
        return merged_list
    return copy.deepcopy(patch)


def set_images(manifest: Manifest, images: list[dict[str, str]]) -> None:
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def render(directory: Path) -> list[Manifest]:
    """The manifests a kustomization builds (see the module's docstring for what it knows)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    understood = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
    assert set(kustomization) <= understood, set(kustomization) - understood
    manifests: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        manifests += render(path) if path.is_dir() else documents(path)
    by_key = {key(m): i for i, m in enumerate(manifests)}
    assert len(by_key) == len(manifests), "two resources share a kind and name"
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"only patches by path are rendered here: {patch}"
        for change in documents(directory / patch["path"]):
            target = by_key.get(key(change))
            assert target is not None, f"{patch['path']} patches no resource: {key(change)}"
            assert manifests[target]["apiVersion"] == change["apiVersion"]
            manifests[target] = merge(manifests[target], change)
    for manifest in manifests:
        set_images(manifest, kustomization.get("images", []))
        if "namespace" in kustomization and manifest["kind"] not in CLUSTER_SCOPED:
            manifest["metadata"]["namespace"] = kustomization["namespace"]
    return manifests


def by_kind(manifests: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {key(m): m for m in manifests}


def test_every_base_manifest_is_valid_and_listed() -> None:
    base = KUBERNETES / "base"
    listed = set(yaml.safe_load((base / "kustomization.yaml").read_text())["resources"])
    files = {p.name for p in base.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files
    for name in sorted(files):
        for manifest in documents(base / name):
            validate(manifest, f"base/{name}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_patch_names_a_kind_and_fields_that_exist(overlay: str) -> None:
    """A patch is partial, so only the fields the base must supply may be missing from it;
    the rendered overlay (next test) is then validated whole."""
    directory = KUBERNETES / "overlays" / overlay
    for patch in yaml.safe_load((directory / "kustomization.yaml").read_text())["patches"]:
        for change in documents(directory / patch["path"]):
            where = f"{overlay}/{patch['path']}"
            problem = None
            try:  # SchemaNotFoundError (an unknown kind or apiVersion) fails the test
                kubernetes_validate.validate(change, VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problem = exc
            assert problem is None or problem.validator == "required", f"{where}: {problem}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rendered_overlay_is_valid(overlay: str) -> None:
    manifests = render(KUBERNETES / "overlays" / overlay)
    for manifest in manifests:
        validate(manifest, f"overlays/{overlay} rendered")
    namespaces = {m["metadata"].get("namespace") for m in manifests if m["kind"] != "Namespace"}
    assert namespaces == {
        next(m for m in manifests if m["kind"] == "Namespace")["metadata"]["name"]
    }


def test_the_renderer_does_render() -> None:
    manifests = by_kind(render(KUBERNETES / "overlays" / "production"))
    server = manifests["Deployment", "pocdojo-server"]["spec"]
    assert server["replicas"] == 6
    (container,) = server["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/pocdojo:0.1.0"
    assert container["resources"]["requests"]["cpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # kept from the base
    local = by_kind(render(KUBERNETES / "overlays" / "local"))
    assert "OPENSEARCH_URL" not in local["ConfigMap", "pocdojo-settings"]["data"]
    assert local["Deployment", "pocdojo-server"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["serve"]
    assert merge([{"name": "a", "x": 1}], [{"name": "a", "y": 2}, {"name": "b"}]) == [
        {"name": "a", "x": 1, "y": 2},
        {"name": "b"},
    ]


def test_a_broken_manifest_is_refused() -> None:
    service = documents(KUBERNETES / "base" / "service.yaml")[0]
    service["spec"]["ports"][0]["prot"] = 80
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, VERSION, strict=True)


def test_servers_drain_and_are_probed_spread_and_budgeted() -> None:
    manifests = by_kind(render(KUBERNETES / "base"))
    spec = manifests["Deployment", "pocdojo-server"]["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pause = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    settings = manifests["ConfigMap", "pocdojo-settings"]["data"]
    drain = float(settings["DRAIN_DELAY"]) + float(settings["DRAIN_TIMEOUT"])
    assert spec["terminationGracePeriodSeconds"] > pause + drain
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert "topology.kubernetes.io/zone" in keys
    assert manifests["PodDisruptionBudget", "pocdojo-server"]["spec"]["maxUnavailable"] == 1
    hpa = manifests["HorizontalPodAutoscaler", "pocdojo-server"]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    for ingress in ("pocdojo", "pocdojo-rooms"):
        annotations = manifests["Ingress", ingress]["metadata"]["annotations"]
        for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    rooms = manifests["Ingress", "pocdojo-rooms"]["metadata"]["annotations"]
    assert rooms["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$uri"
    job = manifests["Job", "pocdojo-migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["migrate"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_known_and_secrets_only_referenced(overlay: str) -> None:
    manifests = render(KUBERNETES / "overlays" / overlay)
    assert not [m for m in manifests if m["kind"] == "Secret"], "no Secret is committed"
    known = known_variables()
    config = by_kind(manifests)["ConfigMap", "pocdojo-settings"]["data"]
    assert set(config) <= known, set(config) - known
    for manifest in manifests:
        spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            for variable in container.get("env", []):
                if manifest["metadata"]["labels"].get("app.kubernetes.io/name") == "pocdojo":
                    assert variable["name"] in known, variable["name"]
                assert "value" not in variable or not any(
                    word in variable["name"] for word in ("PASSWORD", "SECRET", "URL")
                ), f"{variable['name']} is given in clear, not by secretKeyRef"
