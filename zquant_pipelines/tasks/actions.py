"""What each task action does when its op runs: the same sync and factor functions the assets
call, plus the script runner and the example task.

Every data action reports what it wrote to the asset catalog, so the asset view stays true
whichever job wrote the data: whole-market writes of a trading day are partition
materializations; a repair of a few stocks is an observation of those partitions (it does
not make a day complete, so the after-close catch-up still sees a missing day).
"""

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg

from zquant_pipelines.assets.financials import first_report_period
from zquant_pipelines.assets.partitions import (
    PARTITION_DATE_FORMAT,
    partition_date,
    partitions_start,
)
from zquant_pipelines.assets.progress import StepProgressReporter
from zquant_pipelines.assets.screening import load_screens_or_fail
from zquant_pipelines.constants import CALENDAR_EXCHANGES, ENV_SCRIPTS_DIR, REPO_ROOT
from zquant_pipelines.dates import market_today
from zquant_pipelines.process_tree import ProcessTree, become_subreaper, start_guard
from zquant_pipelines.screening.run import screen_days
from zquant_pipelines.sync import financials as financial_sync
from zquant_pipelines.sync import market as sync
from zquant_pipelines.sync.factors import compute_and_store_factors, select_factors
from zquant_pipelines.table_statistics import compute_table_statistics
from zquant_pipelines.tasks.action_params import DEFAULT_FINANCIAL_PERIODS, normalize_ts_code

DEFAULT_SCRIPTS_DIR = REPO_ROOT / "scripts"
# What every script gets of our environment; a task adds names with ``env:``.
SCRIPT_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
# How often a running script's process tree is sampled.
SCRIPT_SAMPLE_SECONDS = 0.1
# zquant's default window for the calendar sync: a year back and a year ahead.
CALENDAR_DEFAULT_DAYS = 365
# The APIs a "daily data" action writes: bars and the factor that adjusts them.
DAILY_DATA_APIS = ("daily", "adj_factor")

ActionFn = Callable[[dg.OpExecutionContext, object], dict]


def check_not_future(end: dt.date) -> None:
    if end > market_today():
        raise dg.Failure(
            f"end_date {end:%Y%m%d} is in the future (today is {market_today():%Y%m%d})",
            allow_retries=False,
        )


def report(context: dg.OpExecutionContext, result: sync.SyncResult, *, repair_codes=None) -> dict:
    """Log what a sync wrote as asset events, and return it as op metadata."""
    first_partition = partition_date(partitions_start())
    days = result.trade_dates + ([] if repair_codes else result.closed_dates)
    partitioned = result.table not in ("stock_basic", "trade_cal")
    if not partitioned:
        context.log_event(
            dg.AssetMaterialization(asset_key=result.table, metadata={"rows": result.rows})
        )
    for day in sorted(days):
        if day < first_partition or day.weekday() >= 5:
            continue
        key = f"{day:{PARTITION_DATE_FORMAT}}"
        figures = result.day_figures(day)
        if repair_codes:
            context.log_event(
                dg.AssetObservation(
                    asset_key=result.table,
                    partition=key,
                    metadata={**figures, "ts_codes": list(repair_codes)},
                )
            )
        else:
            context.log_event(
                dg.AssetMaterialization(asset_key=result.table, partition=key, metadata=figures)
            )
    summary = {
        f"{result.table}_rows": result.rows,
        f"{result.table}_api_calls": result.api_calls,
        f"{result.table}_open_days": len(result.trade_dates),
    }
    context.log.info(f"{result.table}: {summary}")
    return summary


def resolve_range(params, warehouse) -> tuple[dt.date, dt.date]:
    """The params' validated dates. A missing end is the latest open day on or before today
    per the synced calendar (zquant's default: a weekend run works on Friday, and a run
    before tushare publishes today fails instead of writing nothing); a missing start is
    the end."""
    end = params.end_date or sync.latest_open_day(warehouse, market_today())
    start = params.start_date or end
    sync.check_date_range(start, end)
    return start, end


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def sync_stock_list(context, params) -> dict:
    r = context.resources
    return report(context, sync.sync_stock_basic(r.market_source, r.warehouse))


def sync_trading_calendar(context, params) -> dict:
    today = market_today()
    start = params.start_date or today - dt.timedelta(CALENDAR_DEFAULT_DAYS)
    end = params.end_date or today + dt.timedelta(CALENDAR_DEFAULT_DAYS)
    exchanges = tuple(params.exchanges or CALENDAR_EXCHANGES)
    r = context.resources
    return report(context, sync.sync_trade_cal(r.market_source, r.warehouse, start, end, exchanges))


def codes_of(params) -> list[str]:
    """The ts_codes a daily-data action names (ts_code, symbol or codelist); none means the
    whole market. The params model has already checked and suffixed ts_code and codelist."""
    if getattr(params, "ts_code", None):
        return [params.ts_code]
    if getattr(params, "symbol", None):
        return [normalize_ts_code(params.symbol)]
    return list(getattr(params, "codelist", None) or [])


def sync_stock_days(context, apis: Sequence[str], codes: list[str], start, end) -> dict:
    r = context.resources
    days = days_between(start, end)
    progress = StepProgressReporter(context, apis, days)
    summary: dict = {}
    for api_name in apis:
        if codes:
            result = sync.sync_stocks_over_range(
                r.market_source, r.warehouse, api_name, codes, start, end, progress=progress
            )
            summary |= report(context, result, repair_codes=codes)
        else:
            result = sync.sync_trading_days(
                r.market_source,
                r.warehouse,
                api_name,
                days,
                progress=progress,
                written_through=progress.written_through(api_name),
            )
            summary |= report(context, result)
    return summary


def sync_daily_bars(context, params) -> dict:
    """sync_daily_data (some stocks) and sync_all_daily_data (the market, or a codelist)."""
    start, end = resolve_range(params, context.resources.warehouse)
    check_not_future(end)
    codes = codes_of(params)
    if codes:
        check_codes_listed(context.resources.warehouse, codes)
    return sync_stock_days(context, DAILY_DATA_APIS, codes, start, end)


# A failure names this many codes the stock list does not hold (then says how many more).
SHOWN_UNLISTED_CODES = 20


def check_codes_listed(warehouse, codes: Sequence[str]) -> None:
    """Fail, naming them, on codes the synced stock list does not hold: tushare answers a
    code it does not know with no rows, which would pass for a successful repair."""
    listed = set(warehouse.read_frame("SELECT ts_code FROM stock_basic")["ts_code"])
    unlisted = [code for code in codes if code not in listed]
    if not unlisted:
        return
    shown = unlisted[:SHOWN_UNLISTED_CODES]
    more = f" and {len(unlisted) - len(shown):,} more" if len(unlisted) > len(shown) else ""
    hint = (
        "stock_basic is empty: sync the stock list first (a task with task_action"
        " sync_stock_list)"
        if not listed
        else "check the codes; a stock listed since the last sync_stock_list needs it run again"
    )
    raise dg.Failure(
        f"{len(unlisted)} of {len(codes)} codes are not in the stock list (stock_basic):"
        f" {', '.join(shown)}{more}; {hint}",
        allow_retries=False,
    )


def whole_market_action(api_name: str) -> ActionFn:
    """The action syncing one trading-day API for the whole market over the params' range
    (default: the latest trading day): zquant's sync_daily_basic_data, sync_factor_data
    (stk_factor) and sync_stkfactorpro_data (stk_factor_pro)."""

    def action(context, params) -> dict:
        start, end = resolve_range(params, context.resources.warehouse)
        check_not_future(end)
        return sync_stock_days(context, (api_name,), [], start, end)

    action.__name__ = action.__qualname__ = f"sync_{api_name}_days"
    return action


def calculate_factor(context, params) -> dict:
    start, end = resolve_range(params, context.resources.warehouse)
    codes = list(params.codes or [])
    days = days_between(start, end)
    progress = StepProgressReporter(context, ["factor_daily"], days)
    result = compute_and_store_factors(
        context.resources.warehouse,
        days,
        codes,
        progress=progress,
        written_through=progress.written_through("factor_daily"),
        factors=select_factors(params.selection),
        zquant_literal=params.zquant_literal,
    )
    return report(context, result, repair_codes=codes or None)


def batch_stock_filter(context, params) -> dict:
    """Every screen of the screens file over the range (default: the latest trading day)."""
    start, end = resolve_range(params, context.resources.warehouse)
    screens = load_screens_or_fail()
    return report(
        context, screen_days(context.resources.warehouse, screens, days_between(start, end))
    )


def statistics_table_data(context, params) -> dict:
    """Table statistics of each open day of the range (default: the latest trading day)."""
    start, end = resolve_range(params, context.resources.warehouse)
    result, _ = compute_table_statistics(context.resources.warehouse, days_between(start, end))
    return report(context, result)


def sync_financial_data(context, params) -> dict:
    """The chosen statements of ``params.period``, or of the last ``recent_periods`` quarter
    ends (default 2), each period a partition materialization of its report-period asset
    (one before the partitions' start is synced but not reported)."""
    r = context.resources
    periods = (
        [params.period]
        if params.period
        else financial_sync.recent_periods(
            market_today(), params.recent_periods or DEFAULT_FINANCIAL_PERIODS
        )
    )
    first_partition = partition_date(first_report_period(partitions_start()))
    summary: dict = {}
    for api_name in params.apis:
        for period in periods:
            result = financial_sync.sync_report_period(
                r.market_source, r.warehouse, api_name, period
            )
            figures = result.figures()
            context.log.info(f"{api_name}: {figures}")
            if period >= first_partition:
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=api_name, partition=figures["period"], metadata=figures
                    )
                )
            summary[f"{api_name}_{period:%Y%m%d}_rows_added"] = result.added
            summary[f"{api_name}_api_calls"] = (
                summary.get(f"{api_name}_api_calls", 0) + result.api_calls
            )
    return summary


def scripts_dir() -> Path:
    return Path(os.environ.get(ENV_SCRIPTS_DIR, DEFAULT_SCRIPTS_DIR)).resolve()


def resolve_script(script: str) -> Path:
    """The script's real path, refused unless it lies inside the scripts folder.

    Resolving follows symlinks, so a link that points outside the folder is refused too.
    """
    folder = scripts_dir()
    if Path(script).is_absolute() or ".." in Path(script).parts:
        problem = f"script {script!r} must be a path relative to {folder} without '..'"
    elif not (path := (folder / script).resolve()).is_relative_to(folder):
        problem = f"script {script!r} resolves to {path}, outside {folder}"
    elif not path.is_file():
        problem = f"script {script!r} does not exist in {folder}"
    else:
        return path
    raise dg.Failure(problem, allow_retries=False)


def script_environment(names, pipes_env: dict[str, str]) -> dict[str, str]:
    """A script's environment: the allow-listed basics, the variables its task names, and the
    dagster-pipes bootstrap. Nothing else of ours (tokens, URLs with passwords) reaches it."""
    wanted = (*SCRIPT_BASE_ENV, *(names or []))
    return {name: os.environ[name] for name in wanted if name in os.environ} | pipes_env


def run_script(context, params) -> dict:
    """Run a script under dagster-pipes: its logs and reported metadata reach this run.

    The argv list goes to the process as is (no shell), with the environment of
    ``script_environment``. On timeout, on termination of the run (Dagster interrupts this
    step) and when the script exits, the script and every process it started, also one that
    left its session, are terminated, then killed (zquant_pipelines/process_tree.py).
    """
    path = resolve_script(params.script)
    command = [sys.executable, str(path)] if path.suffix == ".py" else [str(path)]
    command += list(params.args or [])
    # Orphans of the script are re-parented here, where the tree below still finds them.
    become_subreaper()
    with dg.open_pipes_session(
        context=context,
        context_injector=dg.PipesTempFileContextInjector(),
        message_reader=dg.PipesTempFileMessageReader(),
    ) as session:
        env = script_environment(params.env, session.get_bootstrap_env_vars())
        process = subprocess.Popen(command, env=env, cwd=path.parent, start_new_session=True)
        tree = ProcessTree(process.pid)
        guard = start_guard(process.pid)
        try:
            returncode = wait_sampling(process, tree, params.timeout_seconds)
        finally:
            guard.kill()
            guard.wait()
            tree.end()
            process.wait()
        if returncode is None:
            raise dg.Failure(
                f"script {params.script!r} ran past its timeout of {params.timeout_seconds} s"
            )
    if returncode != 0:
        raise dg.Failure(f"script {params.script!r} exited with code {returncode}")
    reported = {}
    for message in session.get_custom_messages():
        if isinstance(message, dict):
            reported |= message
    return {"script": params.script, "returncode": returncode, **reported}


def wait_sampling(process: subprocess.Popen, tree: ProcessTree, timeout: float) -> int | None:
    """The script's exit code, or None past ``timeout``; samples its process tree meanwhile."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            return process.wait(timeout=min(left, SCRIPT_SAMPLE_SECONDS))
        except subprocess.TimeoutExpired:
            tree.sample()
    return None


def example_task(context, params) -> dict:
    """A demo action: logs, optionally sleeps, and fails its first ``fail_attempts`` tries."""
    context.log.info(params.message or "example_task ran")
    if params.sleep_seconds:
        time.sleep(params.sleep_seconds)
    attempt = context.retry_number + 1
    if params.fail or attempt <= (params.fail_attempts or 0):
        raise dg.Failure(f"example_task failed on attempt {attempt} as configured")
    return {"attempt": attempt}


ACTIONS: dict[str, ActionFn] = {
    "sync_stock_list": sync_stock_list,
    "sync_trading_calendar": sync_trading_calendar,
    "sync_daily_data": sync_daily_bars,
    "sync_all_daily_data": sync_daily_bars,
    "sync_daily_basic_data": whole_market_action("daily_basic"),
    "sync_factor_data": whole_market_action("stk_factor"),
    "sync_stkfactorpro_data": whole_market_action("stk_factor_pro"),
    "calculate_factor": calculate_factor,
    "batch_stock_filter": batch_stock_filter,
    "statistics_table_data": statistics_table_data,
    "sync_financial_data": sync_financial_data,
    "run_script": run_script,
    "example_task": example_task,
}
