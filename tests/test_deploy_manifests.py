"""The plain manifests and the Helm chart's static parts: parse, and keep the promises.

There is no Kubernetes API server or helm binary here, so these read the files as data.
"""

from __future__ import annotations

import re
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


def test_plain_manifests_grant_events_and_nothing_more() -> None:
    docs = _docs(ROOT / "deploy" / "reprogate.yaml")
    by_kind = {d["kind"]: d for d in docs}
    role = by_kind["ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    binding = by_kind["ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = by_kind["ServiceAccount"]["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]
    assert pod["automountServiceAccountToken"] is True  # Events need the API token
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    config = yaml.safe_load(maps["reprogate-config"]["data"]["config.yaml"])
    assert config["events"] is True and config["pull_secrets"] is False
    hook = by_kind["ValidatingWebhookConfiguration"]["webhooks"][0]
    assert hook["sideEffects"] == "NoneOnDryRun"


def _template_as_data(text: str, keep: set[str]) -> list[dict]:  # type: ignore[type-arg]
    """A Helm template read as YAML without helm: ``{{- if X }}`` blocks are kept when X names
    a value in ``keep`` (dropped otherwise), other directive lines are dropped and inline
    expressions become a placeholder."""
    out: list[str] = []
    skipping: list[bool] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{{") and stripped.endswith("}}"):
            if re.match(r"\{\{-? if ", stripped):
                names = set(re.findall(r"\.Values\.([\w.]+)", stripped))
                skipping.append(not (names & keep))
            elif re.match(r"\{\{-? end", stripped):
                skipping.pop()
            continue
        if any(skipping):
            continue
        out.append(re.sub(r"\{\{.*?\}\}", "TEMPLATED", line))
    return [d for d in yaml.safe_load_all("\n".join(out)) if d]


def test_helm_rbac_follows_the_feature_switches() -> None:
    text = (ROOT / "helm" / "reprogate" / "templates" / "rbac.yaml").read_text()
    text = re.sub(r"\{\{- /\*.*?\*/ -\}\}\n", "", text, flags=re.S)
    events_only = {d["kind"]: d for d in _template_as_data(text, {"events.enabled"})}
    assert events_only["ClusterRole"]["rules"] == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}
    ]
    assert events_only["ClusterRoleBinding"]["subjects"][0]["kind"] == "ServiceAccount"
    both = {
        d["kind"]: d for d in _template_as_data(text, {"events.enabled", "pullSecrets.enabled"})
    }
    assert both["ClusterRole"]["rules"][1] == {
        "apiGroups": [""],
        "resources": ["secrets", "serviceaccounts"],
        "verbs": ["get"],
    }
    neither = {d["kind"]: d for d in _template_as_data(text, set())}
    assert set(neither) == {"ServiceAccount"}
    values = yaml.safe_load((ROOT / "helm" / "reprogate" / "values.yaml").read_text())
    assert values["events"]["enabled"] is True
    assert values["pullSecrets"]["enabled"] is False
    config = (ROOT / "helm" / "reprogate" / "templates" / "configmap.yaml").read_text()
    assert "events: {{ .Values.events.enabled }}" in config
    assert "pull_secrets: {{ .Values.pullSecrets.enabled }}" in config
    deployment = (ROOT / "helm" / "reprogate" / "templates" / "deployment.yaml").read_text()
    assert 'serviceAccountName: {{ include "reprogate.fullname" . }}' in deployment
