"""The Kubernetes deployment (Helm values for the official chart, and the Secret it reads) says
the same as the compose stack and the instance file: parsed and cross-checked, not rendered."""

from __future__ import annotations

import pytest
import yaml

from comfort_assets_tests.test_platform_deploy import DEPLOY, PRODUCTION_ENV, _option

K8S = DEPLOY / "k8s"


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


@pytest.fixture(scope="module")
def secrets() -> dict[str, dict]:
    docs = yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    return {doc["metadata"]["name"]: doc["stringData"] for doc in docs if doc}


def test_the_user_deployment_runs_the_code_location_like_compose(values):
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    command = compose["services"]["code"]["command"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", _option(command, "-m")]
    assert deployment["port"] == int(_option(command, "-p"))
    images = {deployment["image"]["repository"], values["dagsterWebserver"]["image"]["repository"]}
    assert len(images) == 1 and images.pop().endswith("/comfort-assets")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_every_pod_gets_the_production_settings(values, secrets):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    holders = (
        deployment,
        values["dagsterWebserver"],
        values["dagsterDaemon"],
        values["runLauncher"]["config"]["k8sRunLauncher"],
    )
    for holder in holders:
        names = [s["name"] for s in holder["envSecrets"]]
        assert names and all(name in secrets for name in names)
        settings = {k for name in names for k in secrets[name]}
        assert settings >= PRODUCTION_ENV, PRODUCTION_ENV - settings
    assert secrets["comfort-assets-env"]["COMFORT_ENV"] == "production"
    postgres = values["postgresql"]
    assert not postgres["enabled"] and postgres["postgresqlDatabase"] == "dagster"
    assert "postgresql-password" in secrets[values["global"]["postgresqlSecretName"]]


def test_the_queue_limits_match_the_instance_file(values):
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_coordinator"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == instance["class"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["config"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["config"]["tag_concurrency_limits"]
