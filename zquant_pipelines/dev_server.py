"""`make dev`: `dagster dev` (webserver, daemon, code servers that reload) whose webserver
refuses what another site's page could send it (CSRF).

Dagster 1.13's webserver executes a GraphQL mutation sent as GET, takes POSTs from any
Origin, and has no option against either: any page a developer opens could launch, pause or
stop runs on 127.0.0.1:3000. This module runs `dagster dev` itself, changing one thing: the
webserver process it starts is this module's ``webserver`` command, dagster-webserver's own
CLI with its ASGI app wrapped in ``SameOriginGuard``, which refuses

- a GraphQL mutation in a GET's query string (405), whatever the headers;
- a POST/PUT/PATCH/DELETE whose Origin, or lacking one, Referer is not this server (403);
- a websocket (the UI's GraphQL subscriptions) whose Origin is not this server (403).

"This server" is the address the connection came in on, plus the loopback names when that is
a loopback address: http://127.0.0.1:3000 and http://localhost:3000 for `make dev`. Requests
with neither Origin nor Referer (curl, `zquant --url`, DagsterGraphQLClient) pass; the UI's
own requests carry its own Origin.

    python -m zquant_pipelines.dev_server [dagster dev options]   # what `make dev` runs

Two of `dagster dev`'s start-up warnings are wrong for `make dev` and are not shown: that the
repo's dagster.yaml "will not be used" (instance_home copied it to DAGSTER_HOME: dropped only
while that copy is current), and that `dev_command` is superseded by `dg dev` (dg is not
installed; this module runs Dagster's dev command on purpose).
"""

import ipaddress
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import dagster._cli.dev as dagster_dev_cli
import dagster_webserver.cli as webserver_cli
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.datastructures import Headers, QueryParams
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocketClose

from zquant_pipelines.constants import ENV_DAGSTER_HOME
from zquant_pipelines.instance_home import is_prepared

WEBSERVER_COMMAND = "webserver"
# How `dagster dev` starts its two processes (dagster/_cli/dev.py); anything else means
# Dagster changed and this module must follow, not start an unguarded webserver.
DAGSTER_WEBSERVER_MODULE = ["-m", "dagster_webserver"]
DAGSTER_DAEMON_MODULE = ["-m", "dagster._daemon"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
# A websocket closed before it is accepted is answered HTTP 403 by uvicorn.
POLICY_VIOLATION = 1008
# dagster/_cli/dev.py warns so when the current folder holds a dagster.yaml other than
# DAGSTER_HOME's: ours is the template instance_home copies there.
INSTANCE_TEMPLATE_WARNING = "Found a dagster instance configuration value"


def is_mutation(document: str | None) -> bool:
    """Whether the GraphQL ``document`` holds a mutation; unparsable ones are not executed
    by Dagster either, so they are left to it."""
    if not document:
        return False
    try:
        parsed = parse(document)
    except GraphQLError:
        return False
    return any(
        isinstance(definition, OperationDefinitionNode)
        and definition.operation == OperationType.MUTATION
        for definition in parsed.definitions
    )


def own_origins(scope: dict) -> set[str]:
    """The origins of this server's own pages: the address the connection came in on."""
    if scope.get("server") is None:  # a unix socket: no page is this server's
        return set()
    host, port = scope["server"]
    scheme = "https" if scope["scheme"] in ("https", "wss") else "http"
    names = {f"[{host}]" if ":" in host else host}
    try:
        if ipaddress.ip_address(host).is_loopback:
            names.update(LOOPBACK_NAMES)
    except ValueError:  # a unix socket or a name: only itself
        pass
    return {f"{scheme}://{name}:{port}" for name in names}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


def refusal(scope: dict) -> tuple[int, str] | None:
    """(HTTP status, reason) when the request must not reach Dagster, else None."""
    if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
        if is_mutation(QueryParams(scope["query_string"]).get("query")):
            return 405, "GraphQL mutations are not accepted over GET (CSRF): POST them"
        return None
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    if origin is None and headers.get("referer") is not None:
        origin = origin_of(headers["referer"])
    if origin is not None and origin.lower() not in own_origins(scope):
        return 403, f"cross-origin request from {origin!r} refused (CSRF)"
    return None


class SameOriginGuard:
    """ASGI middleware refusing what ``refusal`` names, for HTTP and websockets alike."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        refused = refusal(scope) if scope["type"] in ("http", "websocket") else None
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(POLICY_VIOLATION, refused[1])(scope, receive, send)
        else:
            status, reason = refused
            await PlainTextResponse(reason, status_code=status)(scope, receive, send)


def guarded_webserver_argv(argv: Sequence[str]) -> list[str]:
    """`dagster dev`'s webserver command with this module's guarded webserver instead."""
    python, *module_and_options = argv
    if module_and_options[:2] == DAGSTER_WEBSERVER_MODULE:
        return [python, "-m", __spec__.name, WEBSERVER_COMMAND, *module_and_options[2:]]
    if module_and_options[:2] == DAGSTER_DAEMON_MODULE:
        return list(argv)
    raise RuntimeError(f"dagster dev started an unknown process {argv[:3]}: update {__spec__.name}")


class CopiedInstanceTemplateFilter(logging.Filter):
    """Drops dagster dev's warning that the current folder's dagster.yaml goes unused."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(INSTANCE_TEMPLATE_WARNING)


def quiet_wrong_warnings() -> None:
    home = os.environ.get(ENV_DAGSTER_HOME)
    if home and is_prepared(Path(home)):
        logging.getLogger("dagster").addFilter(CopiedInstanceTemplateFilter())
    warnings.filterwarnings(
        "ignore", message="Function `dev_command` is superseded", category=dg.SupersessionWarning
    )


def run_dev(options: Sequence[str]) -> None:
    start_process = dagster_dev_cli.open_ipc_subprocess

    def start_guarded(argv, **kwargs):
        return start_process(guarded_webserver_argv(argv), **kwargs)

    # dagster dev's own code, with the webserver swapped: its options, code servers (reload),
    # daemon and shutdown stay Dagster's.
    dagster_dev_cli.open_ipc_subprocess = start_guarded
    quiet_wrong_warnings()
    dagster_dev_cli.dev_command.main(list(options), prog_name="make dev")


def run_guarded_webserver(options: Sequence[str]) -> None:
    create_app = webserver_cli.create_app_from_workspace_process_context

    def create_guarded_app(*args, **kwargs):
        return SameOriginGuard(create_app(*args, **kwargs))

    webserver_cli.create_app_from_workspace_process_context = create_guarded_app
    webserver_cli.cli.main(
        list(options), prog_name="dagster-webserver", auto_envvar_prefix="DAGSTER_WEBSERVER"
    )


def interruptible() -> None:
    """Make SIGINT raise KeyboardInterrupt again when this process started with it ignored.

    A background job of a non-interactive shell (`make dev &` in a script, nohup) inherits
    SIGINT ignored. dagster dev maps SIGTERM to SIGINT's handler, so it would ignore `kill`
    as well, and its webserver and daemon, inheriting the same, the interrupt it stops them
    with: only SIGKILL would end it, leaving them behind."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> None:
    interruptible()
    options = list(sys.argv[1:] if argv is None else argv)
    if options[:1] == [WEBSERVER_COMMAND]:
        run_guarded_webserver(options[1:])
    else:
        run_dev(options)


if __name__ == "__main__":
    main()
