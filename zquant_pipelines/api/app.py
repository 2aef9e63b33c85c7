"""`zquant api`: zquant v0.4's scheduler routes (POST under /api/v1/scheduler), and the older
GET/PUT/DELETE routes of zquant's scheduler guide, served by FastAPI over the operations
layer the CLI uses and the catalog editor (a task created here is written to tasks.yaml,
then the code location is reloaded, ours and the webserver's, so the UI shows it).

Auth: every route needs ZQUANT_API_TOKEN (reads and changes) or ZQUANT_API_READ_TOKEN
(reads only; a change or trigger is 403), as ``Authorization: Bearer KEY`` or
``X-API-Key: KEY`` (both declared as OpenAPI security schemes, so /docs has an Authorize
button), compared in constant time. As in zquant, no key is 403 and a wrong key
401. ``serve`` refuses to start without a key unless told ``no_auth``, and ``no_auth`` only
on a loopback address. Errors are zquant's body (``schemas.Error``), validation errors too,
with the message naming the field.

The operations back end is opened once and used by one request at a time (a lock): it holds
a loaded workspace and a database connection that are not made for concurrent use.
"""

import datetime as dt
import hmac
import ipaddress
import os
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated

import fastapi
import uvicorn
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from zquant_pipelines.api import schemas
from zquant_pipelines.constants import ENV_API_READ_TOKEN, ENV_API_TOKEN
from zquant_pipelines.history.progress import RunProgress
from zquant_pipelines.history.runs import MAX_PAGE_SIZE, RunSummary
from zquant_pipelines.operations import (
    OperationFailed,
    Operations,
    UsageProblem,
    open_operations,
    reload_where_served,
)
from zquant_pipelines.operations.status import TaskRow, sort_rows
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines.tasks.catalog import Catalog, CatalogError, TaskSpec
from zquant_pipelines.tasks.definitions import tasks_file
from zquant_pipelines.tasks.editor import (
    CatalogEditRefused,
    add_task,
    remove_task,
    update_task,
)

PREFIX = "/api/v1/scheduler"
# A task name no catalog uses: a workflow config is validated as a task of this name.
VALIDATION_TASK = "zquant_api_workflow_validation"


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: object = None):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def error_response(status: int, message: str, detail: object = None) -> JSONResponse:
    body = schemas.Error(message=message, code=status, error_detail=detail)
    return JSONResponse(body.model_dump(), status_code=status)


def key_problem(presented: str | None, write: bool, full: str | None, read: str | None):
    """(status, message) refusing the key, or None. Constant-time comparisons, both keys
    always compared, so the time says nothing about which one was close."""
    if presented is None:
        return 403, "Authorization: send 'Bearer KEY' or an X-API-Key header"
    given = presented.encode()
    is_full = full is not None and hmac.compare_digest(given, full.encode())
    is_read = read is not None and hmac.compare_digest(given, read.encode())
    if is_full or (is_read and not write):
        return None
    if is_read:
        return 403, "Authorization: a read-only key may list and read, not change or trigger"
    return 401, "Authorization: the key is not valid"


# The two ways to present a key, as OpenAPI security schemes: /docs shows an Authorize
# button for either. They only read the headers (auto_error off): ``key_problem`` decides.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="BearerKey",
    description=f"Authorization: Bearer KEY ({ENV_API_TOKEN}, or {ENV_API_READ_TOKEN} to read)",
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyHeader",
    description=f"X-API-Key: KEY ({ENV_API_TOKEN}, or {ENV_API_READ_TOKEN} to read)",
)

PresentedBearer = Annotated[HTTPAuthorizationCredentials | None, fastapi.Security(BEARER)]
PresentedHeaderKey = Annotated[str | None, fastapi.Security(API_KEY_HEADER)]


def presented_key(
    bearer: HTTPAuthorizationCredentials | None, header_key: str | None
) -> str | None:
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    return header_key or None


class Backend:
    """The operations back end, one request at a time, and what an edit reloads."""

    def __init__(self, operations: Operations, url: str | None):
        self.operations = operations
        self.url = url
        self.lock = threading.Lock()

    def reload(self) -> str:
        """After tasks.yaml changed: our code location, and the webserver's when we are not
        already talking to it."""
        done = self.operations.reload()
        if self.url is None:
            done = f"{done}; {reload_where_served()}"
        return done


# --- zquant's records from ours ------------------------------------------------------------


def task_named(catalog: Catalog, task_id: int, field: str = "task_id") -> TaskSpec:
    """The task of zquant's id (tasks.yaml's ``id``), or 404."""
    task = catalog.task_with_id(task_id)
    if task is None:
        raise ApiError(404, f"{field}: no task with id {task_id}")
    return task


def zquant_config(catalog: Catalog, task: TaskSpec) -> dict:
    """The task's config as zquant holds it: a workflow's members with their ids and their
    dependencies as ids."""
    if task.workflow is None:
        return dict(task.config)
    ids = {name: catalog.tasks[name].id for name in task.workflow.member_names}
    config = {
        "workflow_type": task.workflow.workflow_type,
        "on_failure": task.workflow.on_failure,
        "tasks": [
            {
                "task_id": ids[member.name],
                "name": member.name,
                "dependencies": [ids[name] for name in member.dependencies],
            }
            for member in task.workflow.members
        ],
    }
    if task.workflow.max_parallel is not None:
        config["max_parallel"] = task.workflow.max_parallel
    return config


def our_config(catalog: Catalog, task_type: str, config: dict) -> dict:
    """A config as zquant's client sends it, in tasks.yaml's terms: workflow members and
    dependencies by name (zquant names them by id)."""
    members = config.get("tasks")
    if task_type != "workflow" or not isinstance(members, list):
        return config

    def name_of(reference: object, field: str) -> object:
        if isinstance(reference, int) and not isinstance(reference, bool):
            return task_named(catalog, reference, field).name
        return reference

    translated = []
    for index, member in enumerate(members):
        if not isinstance(member, dict):
            translated.append(member)
            continue
        where = f"config.tasks[{index}]"
        entry = {"name": name_of(member.get("task_id", member.get("name")), f"{where}.task_id")}
        dependencies = member.get("dependencies")
        if isinstance(dependencies, list):
            entry["dependencies"] = [
                name_of(dependency, f"{where}.dependencies") for dependency in dependencies
            ]
        elif dependencies is not None:
            entry["dependencies"] = dependencies
        translated.append(entry)
    return {**config, "tasks": translated}


def latest_run(operations: Operations, name: str) -> RunSummary | None:
    runs = operations.history(name, limit=1).runs
    return runs[0] if runs else None


def task_record(
    catalog: Catalog, row: TaskRow, latest: RunSummary | None, progress: RunProgress | None
) -> schemas.Task:
    task = catalog.tasks[row.name]
    return schemas.Task(
        id=row.id,
        name=task.name,
        job_id=job_name(task.name),
        task_type=task.task_type,
        cron_expression=task.cron_expression,
        interval_seconds=task.interval_seconds,
        enabled=row.enabled,
        paused=row.paused,
        description=task.description,
        config=zquant_config(catalog, task),
        max_retries=task.max_retries,
        retry_interval=task.retry_interval,
        latest_execution_time=(latest.start or latest.created) if latest else None,
        latest_execution_status=execution_status(latest) if latest else None,
        latest_execution_current_item=progress.current_item if progress else None,
        latest_execution_progress=progress.progress_percent if progress else None,
        schedule_status=row.status,
    )


def execution_status(run: RunSummary) -> str:
    """zquant's status of the run: ``paused`` for one that stopped for a pause request."""
    return "paused" if run.paused else schemas.EXECUTION_STATUS[run.status]


def execution_record(
    catalog: Catalog, run: RunSummary, progress: RunProgress, result: dict | None = None
) -> schemas.Execution:
    """The run as zquant's Execution; the progress fields from the steps' progress records
    (null for a run without a multi-day step)."""
    return schemas.Execution(
        id=run.run_id,
        task_id=catalog.tasks[run.task].id if run.task in catalog.tasks else None,
        status=execution_status(run),
        start_time=run.start,
        end_time=run.end,
        duration_seconds=run.duration_seconds,
        result=result,
        error_message=run.error,
        retry_count=run.attempts - 1,
        progress_percent=progress.progress_percent,
        current_item=progress.current_item,
        total_items=progress.total_items,
        processed_items=progress.processed_items,
        estimated_end_time=progress.estimated_end_time,
        is_paused=run.paused,
        terminate_requested=run.status == "CANCELING",
        created_time=run.created,
    )


# --- the routes' work ----------------------------------------------------------------------


class Scheduler:
    """Each route's work on the back end (the routes only parse and check the key)."""

    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def ops(self) -> Operations:
        return self.backend.operations

    def rows(self, catalog: Catalog, names: list[str] | None = None) -> list[TaskRow]:
        return self.ops.task_rows(catalog, dt.datetime.now(dt.UTC), names)

    def task(self, catalog: Catalog, task_id: int) -> schemas.Task:
        name = task_named(catalog, task_id).name
        (row,) = self.rows(catalog, [name])  # gathered for this task only
        return self.task_of_row(catalog, row)

    def task_of_row(self, catalog: Catalog, row: TaskRow) -> schemas.Task:
        latest = latest_run(self.ops, row.name)
        progress = self.ops.run_progress(latest.run_id) if latest else None
        return task_record(catalog, row, latest, progress)

    def execution_of(self, catalog: Catalog, run: RunSummary, result: dict | None = None):
        return execution_record(catalog, run, self.ops.run_progress(run.run_id), result)

    def edited(self, name: str) -> schemas.Task:
        self.backend.reload()
        catalog = self.ops.catalog()
        return self.task(catalog, catalog.tasks[name].id)

    def create(self, body: schemas.TaskCreate) -> schemas.Task:
        catalog = self.ops.catalog()
        spec = body.model_dump(exclude_none=True)
        if "config" in spec:
            spec["config"] = our_config(catalog, body.task_type, spec["config"])
        add_task(tasks_file(), spec)
        return self.edited(body.name)

    def query(self, body: schemas.TaskQuery) -> schemas.TaskList:
        catalog = self.ops.catalog()
        rows = [
            row
            for row in self.rows(catalog)
            if (body.task_type is None or row.task_type == body.task_type)
            and (body.enabled is None or row.enabled == body.enabled)
        ]
        page = sort_rows(rows, body.order_by, body.order)[body.skip : body.skip + body.limit]
        tasks = [self.task_of_row(catalog, row) for row in page]
        return schemas.TaskList(tasks=tasks, total=len(rows))

    def get(self, task_id: int) -> schemas.Task:
        return self.task(self.ops.catalog(), task_id)

    def update(self, body: schemas.TaskUpdate) -> schemas.Task:
        catalog = self.ops.catalog()
        task = task_named(catalog, body.task_id)
        changes = body.model_dump(exclude_none=True, exclude={"task_id"})
        if "config" in changes:
            changes["config"] = our_config(catalog, task.task_type, changes["config"])
        update_task(tasks_file(), task.name, changes)
        return self.edited(changes.get("name", task.name))

    def delete(self, task_id: int) -> Response:
        task = task_named(self.ops.catalog(), task_id)
        remove_task(tasks_file(), task.name)
        self.backend.reload()
        return Response(status_code=HTTPStatus.NO_CONTENT)

    def trigger(self, task_id: int) -> schemas.Triggered:
        catalog = self.ops.catalog()
        self.ops.trigger(catalog, task_named(catalog, task_id).name, {})
        return schemas.Triggered(message=schemas.TRIGGERED_MESSAGE)

    def set_enabled(self, task_id: int, enabled: bool) -> schemas.Task:
        catalog = self.ops.catalog()
        self.ops.set_enabled(catalog, task_named(catalog, task_id).name, enabled)
        return self.task(catalog, task_id)

    def set_paused(self, task_id: int, paused: bool) -> schemas.Task:
        catalog = self.ops.catalog()
        name = task_named(catalog, task_id).name
        (self.ops.pause if paused else self.ops.resume)(name)
        return self.task(catalog, task_id)

    def executions(self, body: schemas.ExecutionList) -> schemas.ExecutionListResponse:
        catalog = self.ops.catalog()
        name = task_named(catalog, body.task_id).name
        wanted, runs, cursor, total = body.skip + body.limit, [], None, 0
        while len(runs) < wanted:
            page = self.ops.history(
                name, limit=min(wanted - len(runs), MAX_PAGE_SIZE), cursor=cursor
            )
            runs += page.runs
            total, cursor = page.total, page.next_cursor
            if cursor is None:
                break
        shown = runs[body.skip : wanted]
        return schemas.ExecutionListResponse(
            executions=[self.execution_of(catalog, run) for run in shown], total=total
        )

    def run(self, execution_id: str) -> RunSummary:
        if self.ops.run_status(execution_id) is None:
            raise ApiError(404, f"execution_id: no execution (Dagster run) {execution_id!r}")
        return self.ops.run_detail(execution_id).run

    def execution(self, task_id: int, execution_id: str) -> schemas.Execution:
        catalog = self.ops.catalog()
        name = task_named(catalog, task_id).name
        run = self.run(execution_id)
        if run.task != name:
            raise ApiError(
                404, f"execution_id: execution {execution_id!r} is not one of task {task_id}"
            )
        return self.execution_of(catalog, run)

    def terminate(self, execution_id: str) -> schemas.Execution:
        self.run(execution_id)
        self.ops.terminate(execution_id)
        return self.execution_of(self.ops.catalog(), self.run(execution_id))

    def resume(self, execution_id: str) -> schemas.Execution:
        """zquant: the old row, a new execution re-running it; ours re-executes from failure
        (the steps that failed or did not run), the new run's id in ``result``."""
        self.run(execution_id)
        new_id = self.ops.retry(execution_id, from_failure=True)
        result = {"resumed_as_execution_id": new_id, "message": "re-executed from failure"}
        return self.execution_of(self.ops.catalog(), self.run(execution_id), result)

    def workflow_tasks(self, task_id: int) -> list[schemas.Task]:
        catalog = self.ops.catalog()
        task = task_named(catalog, task_id)
        if task.workflow is None:
            raise ApiError(400, f"task_id: task {task_id} ({task.name}) is not a workflow")
        return [self.task(catalog, member.id) for member in catalog.workflow_tasks(task.name)]

    def validate_workflow(self, config: dict) -> schemas.Validation:
        catalog = self.ops.catalog()
        spec = {
            "name": VALIDATION_TASK,
            "task_type": "workflow",
            "config": our_config(catalog, "workflow", config),
        }
        try:
            add_task(tasks_file(), spec, dry_run=True)
        except CatalogEditRefused as refused:
            return schemas.Validation(valid=False, message="\n".join(refused.problems))
        return schemas.Validation(valid=True, message="workflow config is valid")

    def stats(self, task_id: int | None) -> schemas.Stats:
        name = task_named(self.ops.catalog(), task_id).name if task_id else None
        report = self.ops.stats(name)
        figures = report.tasks[0] if name else report.overall
        return schemas.Stats(
            total_executions=figures.total_executions,
            success_count=figures.success_count,
            failed_count=figures.failed_count,
            running_count=figures.running_count,
            success_rate=figures.success_rate or 0.0,
            avg_duration_seconds=figures.avg_duration_seconds,
            latest_execution_time=figures.latest_execution_time,
        )

    def pause_execution(self, execution_id: str) -> schemas.Execution:
        """zquant: the run stops at its next day boundary and is recorded paused; ours asks
        the run to (history/pause.py) and answers with the run as it stands, still running:
        its status reads ``paused`` once a multi-day step has stopped for the request."""
        self.run(execution_id)
        self.ops.pause_run(execution_id)
        result = {"message": "pause requested: the run stops after the day it is writing"}
        return self.execution_of(self.ops.catalog(), self.run(execution_id), result)


# --- the app -------------------------------------------------------------------------------


def create_app(backend: Backend, full_key: str | None, read_key: str | None) -> fastapi.FastAPI:
    """The API; with neither key every request is let in (``serve`` allows that on loopback
    only, when asked)."""
    app = fastapi.FastAPI(
        title="zquant_pipelines scheduler API",
        description="zquant v0.4's scheduler routes over Dagster (docs/operations.md).",
    )
    scheduler = Scheduler(backend)
    open_access = full_key is None and read_key is None

    def access(write: bool) -> Callable:
        def check(
            bearer: PresentedBearer,
            header_key: PresentedHeaderKey,
        ) -> None:
            if open_access:
                return
            problem = key_problem(presented_key(bearer, header_key), write, full_key, read_key)
            if problem is not None:
                raise ApiError(*problem)

        return check

    reading = [fastapi.Depends(access(write=False))]
    writing = [fastapi.Depends(access(write=True))]

    def locked(work: Callable) -> Callable:
        def run(*args):
            with backend.lock:
                return work(*args)

        return run

    api = fastapi.APIRouter(prefix=PREFIX)

    # zquant v0.4: POST with a JSON body. The older routes' ids are digits ({task_id:int}),
    # so /tasks/{task_id}/... never catches /tasks/workflow/...
    @api.post("/tasks", status_code=201, response_model=schemas.Task, dependencies=writing)
    def create_task(body: schemas.TaskCreate):
        return locked(scheduler.create)(body)

    @api.post("/tasks/query", response_model=schemas.TaskList, dependencies=reading)
    def query_tasks(body: schemas.TaskQuery):
        return locked(scheduler.query)(body)

    @api.post("/tasks/get", response_model=schemas.Task, dependencies=reading)
    def get_task(body: schemas.TaskId):
        return locked(scheduler.get)(body.task_id)

    @api.post("/tasks/update", response_model=schemas.Task, dependencies=writing)
    def update_task_route(body: schemas.TaskUpdate):
        return locked(scheduler.update)(body)

    @api.post("/tasks/delete", status_code=204, dependencies=writing)
    def delete_task(body: schemas.TaskId):
        return locked(scheduler.delete)(body.task_id)

    @api.post("/tasks/trigger", response_model=schemas.Triggered, dependencies=writing)
    def trigger_task(body: schemas.TaskId):
        return locked(scheduler.trigger)(body.task_id)

    # zquant v0.4's POST /tasks/enable with a body, and the older POST /tasks/{id}/enable.
    for action, method, flag in (
        ("enable", scheduler.set_enabled, True),
        ("disable", scheduler.set_enabled, False),
        ("pause", scheduler.set_paused, True),
        ("resume", scheduler.set_paused, False),
    ):
        work = locked(method)
        for path, route in (
            (f"/tasks/{action}", task_switch(work, flag)),
            (f"/tasks/{{task_id:int}}/{action}", task_id_switch(work, flag)),
        ):
            api.add_api_route(
                path, route, methods=["POST"], response_model=schemas.Task, dependencies=writing
            )

    @api.post(
        "/tasks/executions/list",
        response_model=schemas.ExecutionListResponse,
        dependencies=reading,
    )
    def list_executions(body: schemas.ExecutionList):
        return locked(scheduler.executions)(body)

    @api.post("/tasks/executions/get", response_model=schemas.Execution, dependencies=reading)
    def get_execution(body: schemas.ExecutionGet):
        return locked(scheduler.execution)(body.task_id, body.execution_id)

    @api.post("/executions/pause", response_model=schemas.Execution, dependencies=writing)
    def pause_execution(body: schemas.ExecutionId):
        return locked(scheduler.pause_execution)(body.execution_id)

    @api.post("/executions/resume", response_model=schemas.Execution, dependencies=writing)
    def resume_execution(body: schemas.ExecutionId):
        return locked(scheduler.resume)(body.execution_id)

    @api.post("/executions/terminate", response_model=schemas.Execution, dependencies=writing)
    def terminate_execution(body: schemas.ExecutionId):
        return locked(scheduler.terminate)(body.execution_id)

    @api.post("/tasks/workflow/tasks", response_model=list[schemas.Task], dependencies=reading)
    def workflow_tasks(body: schemas.TaskId):
        return locked(scheduler.workflow_tasks)(body.task_id)

    @api.post("/tasks/workflow/validate", response_model=schemas.Validation, dependencies=reading)
    def validate_workflow(body: schemas.WorkflowValidate):
        return locked(scheduler.validate_workflow)(body.config)

    @api.post("/stats", response_model=schemas.Stats, dependencies=reading)
    def stats(body: schemas.StatsQuery):
        return locked(scheduler.stats)(body.task_id)

    # The older routes of zquant's scheduler guide (v0.2), the same work.
    @api.get("/tasks", response_model=schemas.TaskList, dependencies=reading)
    def old_list_tasks(skip: int = 0, limit: int = 100):
        return query_tasks(schemas.TaskQuery(skip=skip, limit=limit))

    @api.get("/tasks/{task_id:int}", response_model=schemas.Task, dependencies=reading)
    def old_get_task(task_id: int):
        return locked(scheduler.get)(task_id)

    @api.put("/tasks/{task_id:int}", response_model=schemas.Task, dependencies=writing)
    def old_update_task(task_id: int, body: schemas.TaskChanges):
        return update_task_route(schemas.TaskUpdate(task_id=task_id, **body.model_dump()))

    @api.delete("/tasks/{task_id:int}", status_code=204, dependencies=writing)
    def old_delete_task(task_id: int):
        return locked(scheduler.delete)(task_id)

    @api.post(
        "/tasks/{task_id:int}/trigger", response_model=schemas.Triggered, dependencies=writing
    )
    def old_trigger_task(task_id: int):
        return locked(scheduler.trigger)(task_id)

    @api.get(
        "/tasks/{task_id:int}/executions",
        response_model=schemas.ExecutionListResponse,
        dependencies=reading,
    )
    def old_list_executions(task_id: int, skip: int = 0, limit: int = 100):
        return list_executions(schemas.ExecutionList(task_id=task_id, skip=skip, limit=limit))

    @api.get(
        "/tasks/{task_id:int}/executions/{execution_id}",
        response_model=schemas.Execution,
        dependencies=reading,
    )
    def old_get_execution(task_id: int, execution_id: str):
        return locked(scheduler.execution)(task_id, execution_id)

    @api.get("/stats", response_model=schemas.Stats, dependencies=reading)
    def old_stats(task_id: int | None = None):
        return locked(scheduler.stats)(task_id)

    @api.get(
        "/tasks/{task_id:int}/workflow", response_model=list[schemas.Task], dependencies=reading
    )
    def old_workflow_tasks(task_id: int):
        return locked(scheduler.workflow_tasks)(task_id)

    @api.post(
        "/tasks/{task_id:int}/workflow/validate",
        response_model=schemas.Validation,
        dependencies=reading,
    )
    def old_validate_workflow(task_id: int, body: schemas.WorkflowConfig):
        return locked(scheduler.validate_workflow)(body.config)

    app.include_router(api)
    install_error_handlers(app)
    return app


def task_switch(method: Callable, flag: bool) -> Callable:
    def route(body: schemas.TaskId):
        return method(body.task_id, flag)

    return route


def task_id_switch(method: Callable, flag: bool) -> Callable:
    def route(task_id: int):
        return method(task_id, flag)

    return route


def install_error_handlers(app: fastapi.FastAPI) -> None:
    """Every error in zquant's body; ours mapped to zquant's statuses (bad input 400, an
    unknown task or run 404, a failed operation 500)."""

    @app.exception_handler(ApiError)
    def api_error(request, error: ApiError):
        return error_response(error.status, error.message, error.detail)

    @app.exception_handler(HTTPException)
    def http_error(request, error: HTTPException):
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request, error: RequestValidationError):
        problems = [
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        ]
        detail = [
            {"loc": list(problem["loc"]), "msg": problem["msg"], "type": problem["type"]}
            for problem in error.errors()
        ]
        return error_response(422, "; ".join(problems), detail)

    @app.exception_handler(CatalogEditRefused)
    def refused(request, error: CatalogEditRefused):
        return error_response(400, "; ".join(error.problems), error.problems)

    @app.exception_handler(UsageProblem)
    def usage(request, error: UsageProblem):
        return error_response(400, str(error))

    @app.exception_handler(CatalogError)
    def broken_catalog(request, error: CatalogError):
        return error_response(500, str(error), error.problems)

    @app.exception_handler(OperationFailed)
    def failed(request, error: OperationFailed):
        return error_response(500, str(error))


# --- serving -------------------------------------------------------------------------------


def startup_problem(host: str, no_auth: bool, full_key: str | None, read_key: str | None):
    """Why the API must not start this way, or None."""
    if no_auth and not is_loopback(host):
        return f"--no-auth serves without keys, so only on a loopback address, not {host!r}"
    if not no_auth and full_key is None and read_key is None:
        return (
            f"set {ENV_API_TOKEN} (and {ENV_API_READ_TOKEN} for a read-only key), or pass"
            " --no-auth to serve without keys on a loopback address"
        )
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_keys(no_auth: bool) -> tuple[str | None, str | None]:
    if no_auth:
        return None, None
    return os.environ.get(ENV_API_TOKEN) or None, os.environ.get(ENV_API_READ_TOKEN) or None


def serve(host: str, port: int, no_auth: bool, url: str | None) -> None:
    """Serve the API until stopped (startup_problem checked by the caller)."""
    full_key, read_key = api_keys(no_auth)
    with open_operations(url) as operations:
        app = create_app(Backend(operations, url), full_key, read_key)
        uvicorn.run(app, host=host, port=port, log_level="info")
