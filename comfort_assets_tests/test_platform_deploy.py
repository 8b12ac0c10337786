"""The deployment files hold together: no container engine runs here, so the compose file, the
Dockerfile, the workspace, the instance file and nginx's config are parsed and cross-checked
(services, ports, env, depends_on), and every variable the code reads is set or documented."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = "comfort-assets:latest"
DAGSTER_ROLES = ("code", "webserver", "daemon")
#: what production cannot start without (deployment.py, the prediction store, the instance)
PRODUCTION_ENV = {
    "COMFORT_ENV",
    "COMFORT_S3_BUCKET",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "COMFORT_PREDICTION_DB_URL",
    "KMA_SERVICE_KEY",
}


def interpolate(text: str) -> str:
    """What compose substitutes: ``${V:-default}`` → default, ``${V:?message}`` and ``${V}``
    → a stand-in value for V, ``$$`` → ``$``."""

    def value(match: re.Match) -> str:
        name, operator, rest = match[1], match[2], match[3]
        return rest if operator == ":-" else f"value-of-{name}"

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", value, text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate((DEPLOY / "docker-compose.yaml").read_text()))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile(tmp_path_factory):
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(tmp_path_factory.mktemp("dockerfile")))
    parser.content = (DEPLOY / "Dockerfile").read_text()
    return parser


def _instructions(parser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so anchors can merge"
    return {k: str(v) for k, v in env.items()}


def _option(command: list[str], *flags: str) -> str:
    for flag in flags:
        if flag in command:
            return command[command.index(flag) + 1]
    raise AssertionError(f"none of {flags} in {command}")


def test_depends_on_names_services_with_the_state_it_waits_for(services):
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target, condition in (
            depends.items() if isinstance(depends, dict) else ((d, None) for d in depends)
        ):
            assert target in services, f"{name} depends on unknown service {target}"
            wanted = (condition or {}).get("condition")
            if wanted == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if wanted == "service_completed_successfully":
                assert "restart" not in services[target], f"{target} must be a one-shot job"


def test_the_dagster_roles_share_one_image_built_from_the_dockerfile(services, dockerfile):
    built = [s for s in services.values() if "build" in s]
    assert len(built) == 1 and built[0]["image"] == IMAGE
    context = (DEPLOY / built[0]["build"]["context"]).resolve()
    assert context == ROOT and (context / built[0]["build"]["dockerfile"]).is_file()
    for role in (*DAGSTER_ROLES, "ui"):
        assert services[role]["image"] == IMAGE
    # every COPY source exists in the build context
    for value in _instructions(dockerfile, "COPY"):
        *sources, _ = value.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_dockerfile_installs_the_package_and_its_instance_file(dockerfile):
    assert dockerfile.baseimage.startswith("python:3.11")
    installs = [v for v in _instructions(dockerfile, "RUN") if "pip install" in v]
    assert any('".[postgres' in v for v in installs), "the package with its PostgreSQL extra"
    home = dockerfile.envs["DAGSTER_HOME"]
    assert "deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in _instructions(dockerfile, "COPY")
    assert home.startswith("/")
    assert _instructions(dockerfile, "USER") == ["dagster"], "not root"
    # the compose volume mounted there starts with the image's owner only if the folder exists
    assert any("${DAGSTER_HOME}/storage" in v for v in _instructions(dockerfile, "RUN"))


def test_ports_agree_across_compose_dockerfile_workspace_and_nginx(services, dockerfile):
    exposed = {int(p) for v in _instructions(dockerfile, "EXPOSE") for p in v.split()}
    code = services["code"]["command"]
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (grpc,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert grpc["host"] == "code" and grpc["port"] == int(_option(code, "-p", "--port"))
    assert "-m" in code and _option(code, "-m") == "comfort_assets.definitions"
    webserver = int(_option(services["webserver"]["command"], "-p", "--port"))
    ui = int(_option(services["ui"]["command"], "--server.port"))
    assert {grpc["port"], webserver, ui} <= exposed
    assert f"{webserver}:{webserver}" in services["webserver"]["ports"]
    assert f"{ui}:{ui}" in services["ui"]["ports"]
    for role in ("webserver", "daemon"):
        assert _option(services[role]["command"], "-w") == "workspace.yaml"
    # published host ports are unique
    published = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published))
    # nginx balances over the Bento replicas on the port they expose; the page calls nginx
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"server (\w+):(\d+)", nginx)
    assert upstream and upstream[1] == "bento" and upstream[2] in services["bento"]["expose"]
    assert services["bento"]["deploy"]["replicas"] >= 2
    listen = re.search(r"listen (\d+);", nginx)[1]
    lb = urlsplit(_env(services["ui"])["COMFORT_SERVICE_URL"])
    assert (lb.hostname, str(lb.port)) == ("lb", listen)
    assert any(p.endswith(f":{listen}") for p in services["lb"]["ports"])


def _instance_env_vars() -> set[str]:
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()))
    return found


def test_connections_point_at_the_services_that_serve_them(services):
    instance_vars = _instance_env_vars()
    assert instance_vars == {
        f"DAGSTER_PG_{k}" for k in ("USERNAME", "PASSWORD", "HOST", "PORT", "DB")
    }
    postgres = _env(services["postgres"])
    init = (DEPLOY / "postgres-init.sql").read_text()
    for role in DAGSTER_ROLES:
        env = _env(services[role])
        assert instance_vars <= set(env), f"{role} misses {instance_vars - set(env)}"
        assert env["DAGSTER_PG_HOST"] in services
        assert env["DAGSTER_PG_DB"] == postgres["POSTGRES_DB"]
        assert env["DAGSTER_PG_USERNAME"] == postgres["POSTGRES_USER"]
    for role in (*DAGSTER_ROLES, "bento", "ui"):
        env = _env(services[role])
        assert set(env) >= PRODUCTION_ENV, f"{role} misses {PRODUCTION_ENV - set(env)}"
        assert env["COMFORT_ENV"] == "production"
        db = urlsplit(env["COMFORT_PREDICTION_DB_URL"])
        assert db.hostname == "postgres" and db.username == postgres["POSTGRES_USER"]
        assert f"CREATE DATABASE {db.path.lstrip('/')}" in init
        assert urlsplit(env["AWS_ENDPOINT_URL_S3"]).hostname == "minio"
        assert env["AWS_SECRET_ACCESS_KEY"] == _env(services["minio"])["MINIO_ROOT_PASSWORD"]
        bucket_made = " ".join(services["minio-init"]["entrypoint"])
        assert f"local/{env['COMFORT_S3_BUCKET']}" in bucket_made


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def variables_read_by_the_code() -> set[str]:
    """Names passed to os.environ.get / os.environ[...] / os.getenv / dg.EnvVar /
    number_setting / whole_number_setting."""
    trees = [ast.parse(p.read_text()) for p in (ROOT / "comfort_assets").rglob("*.py")]
    constants = {k: v for tree in trees for k, v in _constants(tree).items()}
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            arg = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr == "get"
                    and _is_environ(func.value)
                ) or (
                    getattr(func, "attr", getattr(func, "id", None))
                    in {"getenv", "EnvVar", "number_setting", "whole_number_setting"}
                ):
                    arg = node.args[0]
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                arg = node.slice
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                names.add(constants[arg.id])
    return {n for n in names if re.fullmatch(r"[A-Z][A-Z0-9_]+", n)}


def test_every_variable_the_code_reads_is_set_or_documented(services):
    read = variables_read_by_the_code()
    assert {
        "COMFORT_ENV",
        "COMFORT_S3_BUCKET",
        "COMFORT_SLACK_WEBHOOK_URL",
    } <= read  # the scan works
    readme = (DEPLOY / "README.md").read_text()
    set_somewhere = {k for s in services.values() for k in _env(s)}
    missing = sorted(v for v in read if v not in set_somewhere and f"`{v}`" not in readme)
    assert not missing, (
        f"neither set in docker-compose.yaml nor documented in deploy/README.md: {missing}"
    )
    # and no COMFORT_* setting is a name the code never reads (a typo would be silent)
    for name, service in services.items():
        for var in _env(service):
            if var.startswith("COMFORT_"):
                assert var in read, f"{name} sets {var}, which nothing reads"


def test_every_interpolated_variable_has_a_default_or_is_in_the_env_example():
    text = (DEPLOY / "docker-compose.yaml").read_text()
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name, operator in re.findall(r"\$\{(\w+)(:[-?])?", text):
        if operator != ":-":
            assert name in example, f"${{{name}}} has no default and is not in .env.example"
    assert (DEPLOY / ".gitignore").read_text().split() == [".env"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_code_service_command_serves_the_production_definitions_to_the_workspace(
    services, tmp_path
):
    """The `code` service's command, with its environment, answers gRPC; a workspace shaped
    like deploy/workspace.yaml (host and port made local) loads every job and sensor."""
    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._grpc.client import DagsterGrpcClient

    from comfort_assets.definitions import defs

    port = _free_port()
    command = list(services["code"]["command"])
    command[command.index("-h") + 1] = "127.0.0.1"
    command[command.index("-p") + 1] = str(port)
    env = {**os.environ, **_env(services["code"]), "DAGSTER_HOME": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", *command], env=env, cwd=ROOT)
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the code server exited"
            try:
                client.ping("ready?")
                break
            except Exception:
                assert time.monotonic() < deadline, "no gRPC answer in 120 s"
                time.sleep(0.5)
        workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
        workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=port)
        local = tmp_path / "workspace.yaml"
        local.write_text(yaml.safe_dump(workspace))
        with (
            dg.instance_for_test() as instance,
            WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(local)])) as context,
        ):
            request = context.create_request_context()
            assert request.get_code_location_error("comfort_assets") is None
            location = request.get_code_location("comfort_assets")
            (repository,) = location.get_repositories().values()
            jobs = {job.name for job in repository.get_all_jobs()}
            sensors = {sensor.name for sensor in repository.get_sensors()}
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert {job.name for job in defs.jobs} <= jobs
    assert {"monitoring_retrain_sensor", "run_failure_notifier"} <= sensors
