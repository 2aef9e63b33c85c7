"""docs/operations.md is true: its GraphQL documents are valid for the installed schema and,
executed as written, in the page's order, against the real `make dev` serving the shipped
tasks.yaml on a temporary instance, answer with the types the page expects; its `zquant`
and `dagster` command lines parse.

A GraphQL example on the page is an HTML comment ``<!-- graphql-test {"expect": ...} -->``
right before a ```graphql block, optionally followed by a ```json block of variables.
``expect`` maps each top-level field of the answer to its ``__typename`` (or to the value
of a scalar field). Variables written as ``"<...>"`` are filled in here from the test
instance (run ids, schedule and sensor state ids)."""

import json
import re
import shlex
from collections.abc import Callable

import click
import dagster as dg
import pytest
import requests
from dagster._cli import cli as dagster_cli
from dagster._core.storage.tags import PARENT_RUN_ID_TAG
from dagster_graphql.schema import create_schema
from graphql import OperationDefinitionNode, parse, validate

from zquant_pipelines.cli.parser import build_parser
from zquant_pipelines.constants import REPO_ROOT
from zquant_pipelines.history.store import CANCELED, FAILED, RUNNING, SUCCESS, statuses_in
from zquant_pipelines.operations.graphql import GraphQLOperations
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines_tests.support.make_dev import serve_make_dev
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer
from zquant_pipelines_tests.support.waiting import wait_until
from zquant_pipelines_tests.support.webserver_probes import TUSHARE_TOKEN

DOC = REPO_ROOT / "docs" / "operations.md"
# The page's examples name the tasks of the catalog a new user has: the shipped one.
SHIPPED_CATALOG = REPO_ROOT / "tasks.yaml"
EXAMPLE = re.compile(
    r"<!-- graphql-test (?P<marker>\{.*?\}) -->\n"
    r"```graphql\n(?P<document>.*?)```\n"
    r"(?:```json\n(?P<variables>.*?)```\n)?",
    re.DOTALL,
)
SHELL_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)
PLACEHOLDER = re.compile(r"<[^<>]+>")
STATE_PLACEHOLDER = re.compile(r"<(scheduleState|sensorState)\.id of (\w+)>")
REQUEST_TIMEOUT_SECONDS = 60
RUN_TIMEOUT_SECONDS = 180
# Sections where the page says there is no such replacement.
WITHOUT_GRAPHQL = {"The daily sync script"}


def doc_text() -> str:
    return DOC.read_text()


def graphql_examples() -> list[dict]:
    """Each example: its operation name, document, variables and expected answer."""
    examples = []
    for match in EXAMPLE.finditer(doc_text()):
        document = match["document"]
        (operation,) = [
            d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)
        ]
        examples.append(
            {
                "name": operation.name.value,
                "document": document,
                "variables": json.loads(match["variables"] or "{}"),
                "expect": json.loads(match["marker"])["expect"],
            }
        )
    return examples


def command_lines() -> list[str]:
    return [
        line.strip()
        for block in SHELL_BLOCK.findall(doc_text())
        for line in block.splitlines()
        if line.strip()
    ]


def argv_of(line: str) -> list[str]:
    """The words of a command line, each ``<...>`` to fill in replaced by a sample word."""
    return shlex.split(PLACEHOLDER.sub("PLACEHOLDER", line))


def sections() -> dict[str, str]:
    """Each ``## `` section of the page by title."""
    parts = re.split(r"^## (.+)$", doc_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# --- the page's structure ------------------------------------------------------------------


def test_every_graphql_block_is_a_marked_example():
    examples = graphql_examples()
    assert len(examples) == doc_text().count("```graphql")
    names = [example["name"] for example in examples]
    assert len(set(names)) == len(names), "operation names repeat"


def test_every_endpoint_section_has_commands_and_a_tested_document():
    for title, body in sections().items():
        assert "```bash" in body, f"section {title!r} gives no command"
        if title not in WITHOUT_GRAPHQL:
            assert "<!-- graphql-test" in body, f"section {title!r} has no tested GraphQL"


def test_the_index_links_to_sections():
    anchors = {re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-") for title in sections()}
    links = re.findall(r"\]\(#([a-z0-9-]+)\)", doc_text())
    assert links and set(links) <= anchors


# --- GraphQL -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    return create_schema().graphql_schema


@pytest.mark.parametrize("example", graphql_examples(), ids=lambda example: example["name"])
def test_document_is_valid_for_the_installed_schema(schema, example):
    assert validate(schema, parse(example["document"])) == []


def test_a_wrong_document_fails_validation(schema):
    # The check above can fail: a field the schema lacks is reported.
    (example, *_) = graphql_examples()
    assert validate(schema, parse(example["document"].replace("__typename", "typename", 1)))


def test_the_stats_example_counts_the_status_groups_zquant_stats_counts():
    (stats,) = [example for example in graphql_examples() if example["name"] == "TaskStats"]
    for group in (SUCCESS, FAILED, RUNNING, CANCELED):
        documented = stats["variables"][group]["statuses"]
        assert sorted(documented) == sorted(status.value for status in statuses_in(group))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(make dev's URL, the values of the page's placeholders that do not change): `make dev`
    serving the shipped tasks.yaml, as the page's reader has it, and the runs its examples
    act on."""
    root = tmp_path_factory.mktemp("operations_doc")
    with (
        TushareWireServer(SampleMarketSource(), token=TUSHARE_TOKEN) as market,
        serve_make_dev(root, market.url, SHIPPED_CATALOG.read_text()) as url,
        GraphQLOperations(url) as ops,
    ):
        catalog = ops.catalog()
        # The shipped repair task fails on an empty warehouse (no stock list synced): a run
        # launched from the code location, for the run and re-execution examples.
        failed = ops.trigger(catalog, "repair_daily_bars", {})
        # A paused task's run stays queued while the daemon serves the queue: one to terminate.
        ops.pause("hello_script")
        waiting = ops.trigger(catalog, "hello_script", {})
        wait_until(
            lambda: ops.run_status(failed) == "FAILURE",
            RUN_TIMEOUT_SECONDS,
            f"the repair run {failed} to fail",
        )
        assert ops.run_status(waiting) == "QUEUED"
        yield url, {"<run id>": failed, "<failed run id>": failed, "<queued run id>": waiting}


def post(url: str, document: str, variables: dict) -> dict:
    """The GraphQL answer: ``data``, and ``errors`` when there are any."""
    response = requests.post(
        f"{url}/graphql",
        json={"query": document, "variables": variables},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    return response.json()


def state_id_resolver(url: str) -> Callable[[str, str], str]:
    """A schedule's or sensor's current state id, read with the page's own `Tasks` query."""
    (tasks,) = [example for example in graphql_examples() if example["name"] == "Tasks"]

    def state_id(kind: str, name: str) -> str:
        repository = post(url, tasks["document"], tasks["variables"])["data"]["repositoryOrError"]
        items = repository["schedules" if kind == "scheduleState" else "sensors"]
        (item,) = [item for item in items if item["name"] == name]
        return item[kind]["id"]

    return state_id


def filled(value, fixed: dict[str, str], state_id: Callable[[str, str], str]):
    """``value`` with every ``"<...>"`` string replaced by its value on the test instance."""
    if isinstance(value, dict):
        return {key: filled(item, fixed, state_id) for key, item in value.items()}
    if isinstance(value, list):
        return [filled(item, fixed, state_id) for item in value]
    if isinstance(value, str) and PLACEHOLDER.fullmatch(value):
        state = STATE_PLACEHOLDER.fullmatch(value)
        if state:
            return state_id(state[1], state[2])
        assert value in fixed, f"the test does not know the placeholder {value}"
        return fixed[value]
    return value


def test_documents_answer_as_the_page_says_on_make_dev_with_the_shipped_catalog(site):
    url, fixed = site
    state_id = state_id_resolver(url)
    problems = []
    # In the page's order: the enable/disable examples toggle a trigger away and back.
    for example in graphql_examples():
        body = post(url, example["document"], filled(example["variables"], fixed, state_id))
        data = body.get("data") or {}
        answer = {
            field: value["__typename"] if isinstance(value, dict) else value
            for field, value in data.items()
        }
        if body.get("errors") or answer != example["expect"]:
            problems.append(f"{example['name']}: expected {example['expect']}, got {body}")
    assert problems == []
    # The mutations did what the page says: the queued run is canceled, the failed one
    # re-executed, and a run of heartbeat_job launched with the page's config.
    with dg.DagsterInstance.get() as instance:
        terminated = instance.get_run_by_id(fixed["<queued run id>"])
        assert terminated.status == dg.DagsterRunStatus.CANCELED
        (reexecution,) = instance.get_runs(
            dg.RunsFilter(tags={PARENT_RUN_ID_TAG: fixed["<failed run id>"]})
        )
        assert reexecution.job_name == "repair_daily_bars_job"
        launched = instance.get_runs(dg.RunsFilter(job_name="heartbeat_job"))
        assert {"message": "from GraphQL"} in [
            run.run_config["ops"]["heartbeat"]["config"] for run in launched
        ]


# --- command lines -------------------------------------------------------------------------


def test_every_command_line_is_zquant_or_dagster():
    lines = command_lines()
    assert lines
    assert [line for line in lines if argv_of(line)[0] not in ("zquant", "dagster")] == []


@pytest.mark.parametrize("line", [line for line in command_lines() if line.startswith("zquant")])
def test_zquant_line_parses(line):
    try:
        build_parser().parse_args(argv_of(line)[1:])
    except SystemExit as error:
        pytest.fail(f"{line!r} does not parse (exit {error.code})")


def parse_dagster(argv: list[str]) -> click.Context:
    """The context of the `dagster` subcommand ``argv`` names, its options parsed."""
    context = dagster_cli.make_context("dagster", [], resilient_parsing=True)
    command, words = dagster_cli, argv[1:]
    while isinstance(command, click.Group):
        name, *words = words
        subcommand = command.get_command(context, name)
        assert subcommand is not None, f"dagster has no command {name!r} in {argv}"
        context = click.Context(subcommand, info_name=name, parent=context)
        command = subcommand
    return command.make_context(context.info_name, words, parent=context.parent)


@pytest.mark.parametrize("line", [line for line in command_lines() if line.startswith("dagster")])
def test_dagster_line_names_a_real_command_with_real_options(line):
    parse_dagster(argv_of(line))


def test_a_wrong_dagster_line_is_refused():
    with pytest.raises(AssertionError, match="no command"):
        parse_dagster(["dagster", "schedule", "toggle", "nightly_schedule"])
    with pytest.raises(click.UsageError):
        parse_dagster(["dagster", "run", "list", "--task", "by_hand"])
