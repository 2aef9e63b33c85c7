"""The on-paper files of deploy/ (compose, Helm values, worker manifest, workspace) cannot be run
on this machine; these checks keep them from rotting: they parse, name the module, commands
and environment variables that exist, and repeat dagster.yaml's instance settings exactly."""

import re
import shlex
from pathlib import Path

import yaml

from zquant_pipelines import constants
from zquant_pipelines.cli.parser import build_parser
from zquant_pipelines.constants import ENV_PG_URL
from zquant_pipelines.operations.base import location_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
MODULE = "zquant_pipelines.definitions"
CODE_SERVER = ["dagster", "code-server", "start"]
# Variables of the images we run unchanged (postgres, nginx), and compose's .env ones.
IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "NGINX_ENVSUBST_FILTER"}


def load(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


def our_variables() -> set[str]:
    named = {value for key, value in vars(constants).items() if key.startswith("ENV_")}
    return named | {ENV_PG_URL}


def proxy_placeholders() -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", (DEPLOY / "nginx" / "zquant.conf").read_text()))


def known(variable: str) -> bool:
    return (
        variable in our_variables()
        or variable.startswith("DAGSTER_")
        or variable in proxy_placeholders()
        or variable in IMAGE_VARIABLES
    )


def test_deploy_workspace_points_at_the_code_server_of_our_location():
    (entry,) = load("workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    assert server["location_name"] == location_name()
    assert server["host"] == {"env": "DAGSTER_GRPC_HOST"}
    assert server["port"] == {"env": "DAGSTER_GRPC_PORT"}


def compose_commands(compose: dict) -> dict[str, list[str]]:
    services = compose["services"].items()
    return {name: service["command"] for name, service in services if "command" in service}


def test_compose_names_only_variables_that_exist():
    text = (DEPLOY / "docker-compose.yaml").read_text()
    compose = yaml.safe_load(text)
    names = set(re.findall(r"\$\{(\w+)", text))
    for service in compose["services"].values():
        names |= set(service.get("environment") or {})
    unknown = sorted(name for name in names if not known(name))
    assert not unknown, f"docker-compose.yaml names variables nobody reads: {unknown}"
    # The nginx service fills every placeholder of the template it mounts.
    assert proxy_placeholders() <= set(compose["services"]["nginx"]["environment"])


def test_compose_commands_use_our_module_workspace_and_cli():
    compose = load("docker-compose.yaml")
    commands = compose_commands(compose)
    assert commands["code"][:3] == CODE_SERVER
    assert commands["code"][commands["code"].index("-m") + 1] == MODULE
    for name in ("webserver", "webserver-readonly", "daemon"):
        workspace = commands[name][commands[name].index("-w") + 1]
        assert (REPO_ROOT / workspace).resolve() == DEPLOY / "workspace.yaml", name
    assert "--read-only" in commands["webserver-readonly"]
    assert "--read-only" not in commands["webserver"]
    workers = [command for command in commands.values() if command[:2] == ["zquant", "worker"]]
    assert len(workers) == 2
    for command in workers:
        build_parser().parse_args(command[1:])  # exits on an option `zquant worker` lacks
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for service in compose["services"].values():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert MODULE in dockerfile


def test_worker_manifest_runs_our_worker_command():
    manifest = load("helm/workers.yaml")
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["zquant", "worker"]
    build_parser().parse_args(container["args"][1:])
    assert all(known(variable["name"]) for variable in container["env"])


def test_helm_values_repeat_the_instance_settings_of_dagster_yaml():
    """The chart writes its own dagster.yaml: its values must say what ours says."""
    instance = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    values = load("helm/values.yaml")
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = instance["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert (
        values["additionalInstanceConfig"]["concurrency"]["pools"]
        == (instance["concurrency"]["pools"])
    )

    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert {key: monitoring[camel(key)] for key in instance["run_monitoring"]} == (
        instance["run_monitoring"]
    )
    retries = values["dagsterDaemon"]["runRetries"]
    assert {key: retries[camel(key)] for key in instance["run_retries"]} == instance["run_retries"]
    for kind, retention in instance["retention"].items():
        chart = values["retention"][kind]["purgeAfterDays"]
        wanted = retention["purge_after_days"]
        if isinstance(wanted, dict):
            chart = {key: chart[key] for key in wanted}
        assert chart == wanted, kind
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["codeServerArgs"] == ["-m", MODULE]
    assert values["dagsterWebserver"]["enableReadOnly"] is True


def test_readme_commands_name_the_shipped_files():
    """Every deploy/ path the README mentions exists; its code-server command is ours."""
    readme = (DEPLOY / "README.md").read_text()
    for path in set(re.findall(r"(?<![\w/])deploy/[\w./-]+\w", readme)):
        assert (REPO_ROOT / path).exists(), path
    commands = [shlex.split(found) for found in re.findall(r"`(dagster[\w-]* [^`]+)`", readme)]
    # Prose names the bare command; a command line has arguments.
    code_server = [c for c in commands if c[:3] == CODE_SERVER and len(c) > len(CODE_SERVER)]
    assert code_server and all(command[3:5] == ["-m", MODULE] for command in code_server)
    for command in commands:
        if "-w" in command:
            assert command[command.index("-w") + 1] == "deploy/workspace.yaml", command
