"""The plain manifests and the Helm chart's static parts: parse, and keep the promises.

There is no Kubernetes API server or helm binary here, so these read the files as data.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _docs(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_plain_manifests_fail_closed_and_spare_the_control_plane() -> None:
    docs = {d["kind"]: d for d in _docs(ROOT / "deploy" / "reprogate.yaml")}
    hook = docs["ValidatingWebhookConfiguration"]["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    excluded = hook["namespaceSelector"]["matchExpressions"][0]["values"]
    assert {"kube-system", "reprogate"} <= set(excluded)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert docs["Deployment"]["spec"]["replicas"] >= 2
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    maps = {
        d["metadata"]["name"]: d
        for d in _docs(ROOT / "deploy" / "reprogate.yaml")
        if d["kind"] == "ConfigMap"
    }
    config = yaml.safe_load(maps["reprogate-config"]["data"]["config.yaml"])
    assert config["deadline_seconds"] < hook["timeoutSeconds"]


def test_plain_config_is_accepted_by_the_settings_loader(tmp_path: Path) -> None:
    from controller.config import load_settings

    docs = {
        d["metadata"]["name"]: d
        for d in _docs(ROOT / "deploy" / "reprogate.yaml")
        if d["kind"] == "ConfigMap"
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(docs["reprogate-config"]["data"]["config.yaml"])
    settings = load_settings(str(cfg), {}, env={})
    assert settings.policies == "/etc/reprogate/policies" and settings.port == 8443


def test_helm_chart_crds_match_the_generated_crds() -> None:
    for crd in (ROOT / "deploy" / "crds").glob("*.yaml"):
        assert (ROOT / "helm" / "reprogate" / "crds" / crd.name).read_text() == crd.read_text()


def test_helm_values_parse_with_ha_defaults() -> None:
    values = yaml.safe_load((ROOT / "helm" / "reprogate" / "values.yaml").read_text())
    assert values["replicaCount"] >= 2
    assert values["webhook"]["failurePolicy"] == "Fail"
    assert values["webhook"]["deadlineSeconds"] < values["webhook"]["timeoutSeconds"]
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
