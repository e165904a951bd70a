"""The Kubernetes manifests in deploy/k8s/ are valid objects for the API server (checked
offline against Kubernetes' JSON schemas, strict: an unknown or misspelt field fails) and
agree with driftloop and with each other: probes on routes the server has, commands the
CLI knows, a Service and an autoscaler that find the Deployment, Secret keys that exist.

No cluster is involved: this is what can be known without one.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml
from kubernetes_validate import utils as k8s

from driftloop.cli import app
from driftloop.core.config import load_settings
from driftloop.serving import InMemoryModelSource, ServedModel, create_app

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes the manifests are for (autoscaling/v2 and batch/v1 CronJob are GA).
KUBERNETES = "1.29"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def _by_kind() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for _, doc in _documents()}


def _pod_specs() -> list[dict[str, Any]]:
    kinds = _by_kind()
    return [
        kinds["Deployment"]["spec"]["template"]["spec"],
        kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ]


def test_the_deployment_shape_is_all_there() -> None:
    assert set(_by_kind()) == {
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Secret",
        "Service",
    }


@pytest.mark.parametrize(
    ("name", "doc"), _documents(), ids=[f"{n}:{d['kind']}" for n, d in _documents()]
)
def test_every_manifest_validates_against_the_kubernetes_schemas_offline(
    name: str, doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object) -> None:
        raise AssertionError("the schema check tried the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    try:
        k8s.validate(doc, KUBERNETES, strict=True)
    except k8s.ValidationError as exc:
        path = ".".join(str(p) for p in exc.caught.path)  # type: ignore[attr-defined]
        pytest.fail(f"{name}: {doc['kind']} {path}: {exc.caught.message}")  # type: ignore[attr-defined]


def test_a_misspelt_field_would_be_caught() -> None:
    service = _by_kind()["Service"]
    broken = {**service, "spec": {**service["spec"], "selectr": {"app": "x"}}}
    with pytest.raises(k8s.ValidationError):
        k8s.validate(broken, KUBERNETES, strict=True)


def test_probes_ask_routes_the_server_has() -> None:
    served = create_app([ServedModel("fraud")], InMemoryModelSource(), refresh_s=0)
    routes = {getattr(r, "path", None) for r in served.routes}
    (container,) = _pod_specs()[0]["containers"]
    probes = [container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")]
    assert probes == ["/readyz", "/healthz"]
    assert set(probes) <= routes


def test_containers_run_commands_the_cli_knows() -> None:
    cli = typer.main.get_command(app)
    for spec in _pod_specs():
        (container,) = spec["containers"]
        context = click.Context(cli)
        command: Any = cli
        args = list(container["args"])
        while isinstance(command, click.Group):
            command = command.get_command(context, args.pop(0))
            assert command is not None, container["args"]
        command.make_context(command.name, args)  # exits on an unknown option


def test_the_service_and_the_autoscaler_find_the_deployment() -> None:
    kinds = _by_kind()
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    metrics = kinds["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert any(m["type"] == "Pods" and "requests" in m["pods"]["metric"]["name"] for m in metrics)


def test_the_secrets_values_reach_the_settings_they_are_meant_for(tmp_path: Path) -> None:
    values = _by_kind()["Secret"]["stringData"]
    for spec in _pod_specs():
        (container,) = spec["containers"]
        environ = {}
        for var in container["env"]:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "driftloop-backends"
            environ[var["name"]] = values[ref["key"]]
        settings = load_settings(root=tmp_path, environ=environ)  # refuses a bad URL
        assert settings.registry.url == values["registry-url"]
        assert settings.registry.artifact_root == values["artifact-root"]
        assert settings.audit.url == values["audit-url"]
        assert settings.features.online_store == values["online-store-url"]
