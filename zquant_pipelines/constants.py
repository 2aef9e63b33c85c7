"""Names and numbers shared by every layer: tushare APIs and fields, table keys, env vars, tags.

Everything here is a contract that other people rely on (see DESIGN.md): change a value
only together with the docs and tests that name it.
"""

from pathlib import Path

from zquant_pipelines import datasets as _datasets
from zquant_pipelines.datasets import financials as _financials

# The checkout: workspace.yaml, dagster.yaml, tasks.yaml and scripts/ are found from here.
REPO_ROOT = Path(__file__).resolve().parents[1]

# Environment variables read by resources and definitions.
ENV_TUSHARE_TOKEN = "TUSHARE_TOKEN"
ENV_TUSHARE_API_URL = "TUSHARE_API_URL"
ENV_WAREHOUSE_URL = "ZQUANT_WAREHOUSE_URL"
ENV_DATA_DIR = "ZQUANT_DATA_DIR"
ENV_TASKS_FILE = "ZQUANT_TASKS_FILE"
# The stock screens file (default: screens.yaml in the checkout).
ENV_SCREENS_FILE = "ZQUANT_SCREENS_FILE"
# A module of project-specific factors (FACTORS: Factor/Family declarations).
ENV_FACTORS_MODULE = "ZQUANT_FACTORS_MODULE"
# The folder run_script takes scripts from (default: scripts/ in the checkout).
ENV_SCRIPTS_DIR = "ZQUANT_SCRIPTS_DIR"
# Dagster's instance directory, and the PostgreSQL URL that moves its storage there.
ENV_DAGSTER_HOME = "DAGSTER_HOME"
ENV_PG_URL = "DAGSTER_PG_URL"
# The webserver `zquant` talks to instead of the local instance.
ENV_DAGSTER_URL = "ZQUANT_DAGSTER_URL"
ENV_PARTITIONS_START = "ZQUANT_PARTITIONS_START"
# Redis URL holding the tushare calls-per-minute budget shared by every worker machine
# (unset: a file-locked budget shared by the processes of one machine).
ENV_RATE_LIMIT_URL = "ZQUANT_RATE_LIMIT_URL"
# Executor of the asset jobs and of tasks that name none: in_process | multiprocess | celery.
ENV_EXECUTOR = "ZQUANT_EXECUTOR"
# Celery broker and result backend (redis://... or amqp://...), read by runs and workers.
ENV_CELERY_BROKER = "ZQUANT_CELERY_BROKER"
ENV_CELERY_BACKEND = "ZQUANT_CELERY_BACKEND"
# Alert targets in Apprise URL syntax, comma separated (unset: the alert sensors start stopped).
ENV_ALERT_URLS = "ZQUANT_ALERT_URLS"
# The UI's base URL, for the link to a run in an alert.
ENV_UI_URL = "ZQUANT_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
# The time of day ("HH:MM", Asia/Shanghai) by which each open day's data must be stored.
ENV_FRESHNESS_DEADLINE = "ZQUANT_FRESHNESS_DEADLINE"
DEFAULT_FRESHNESS_DEADLINE = "19:00"
# How many of the latest report periods financial_revisions_schedule re-syncs each week
# (1 to 12; each period costs ~4 calls whole market, ~21,600 per stock without vip access).
ENV_REVISED_PERIODS = "ZQUANT_REVISED_PERIODS"
# `zquant api`: the key that may read and change (full) and the one that may only read,
# sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`.
ENV_API_TOKEN = "ZQUANT_API_TOKEN"
ENV_API_READ_TOKEN = "ZQUANT_API_READ_TOKEN"
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000

# Executors a task (tasks.yaml `executor:`) or ZQUANT_EXECUTOR may name (see executors.py).
EXECUTOR_NAMES = ("in_process", "multiprocess", "celery")
DEFAULT_EXECUTOR = "multiprocess"

DEFAULT_DATA_DIR = "data"
DEFAULT_TASKS_FILE = "tasks.yaml"
DEFAULT_SCREENS_FILE = "screens.yaml"
# Trading-day partitions reach back at least five years; override with ZQUANT_PARTITIONS_START.
DEFAULT_PARTITIONS_START = "2020-01-02"
MARKET_TIMEZONE = "Asia/Shanghai"

# The task types of tasks.yaml (zquant's): a run by hand, a scheduled run, members in order.
TASK_TYPES = ("manual_task", "common_task", "workflow")
# `zquant tasks list --sort`: zquant's sort keys of its task list and ours (type, next tick);
# operations/status.py orders by them.
TASK_SORT_KEYS = (
    "id",
    "name",
    "task_type",
    "enabled",
    "paused",
    "max_retries",
    "created_time",
    "type",
    "next",
)
# `zquant sync-daily` runs this task's job (action sync_daily_data) with its own codes and
# range: zquant's sync_daily_data.py, as a Dagster run that shows in the task's history.
SYNC_DAILY_TASK = "repair_daily_bars"
# A paused task's pool has this many slots: its runs wait in the queue.
PAUSED_SLOTS = 0
# Trading days `zquant demo` (`make run`) syncs unless told otherwise.
DEMO_TRADING_DAYS = 20

# Run tags every task run carries.
TAG_TASK = "zquant/task"
TAG_TASK_TYPE = "zquant/task_type"
# A multi-day step's progress, updated as it goes: one tag per step, this prefix + step key.
TAG_PROGRESS_PREFIX = "zquant/progress/"

# Exchanges whose calendars are synced (tushare's names).
CALENDAR_EXCHANGES = ("SSE", "SZSE")
# stock_basic list_status values: listed, delisted, paused. All three avoid survivorship bias.
LIST_STATUSES = ("L", "D", "P")

# The tushare datasets, each declared once (zquant_pipelines/datasets/); the names below
# are derived from the declarations for the code that reads them.
DATASETS = _datasets.DATASETS
# Fields requested from each tushare API, in tushare's names and order. The warehouse
# tables keep exactly these columns.
API_FIELDS: dict[str, tuple[str, ...]] = {name: d.fields for name, d in DATASETS.items()}
# Fields asked of every API the client may call: the datasets' and the whole-market *_vip
# variants of the report-period ones (datasets/financials.py).
REQUEST_FIELDS: dict[str, tuple[str, ...]] = {**API_FIELDS, **_financials.VIP_FIELDS}

# The derived tables: factors, stock screens, table statistics.
FACTOR_TABLE = "factor_daily"
SCREEN_TABLE = "stock_screen"
STATISTICS_TABLE = "table_statistics"

# Primary keys of the warehouse tables (also the asset checks' uniqueness keys).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    **{name: d.keys for name, d in DATASETS.items()},
    FACTOR_TABLE: ("ts_code", "trade_date"),
    SCREEN_TABLE: ("trade_date", "screen", "ts_code"),
    STATISTICS_TABLE: ("trade_date", "table_name"),
}

# Columns holding dates: YYYYMMDD text on the wire, SQL DATE in the warehouse.
DATE_COLUMNS = frozenset(
    column.name
    for d in DATASETS.values()
    for column in d.columns
    if column.sql_type is _datasets.SqlType.DATE
)

# The market APIs partitioned by trading day (one call per API per open day, plus pages).
TRADING_DAY_APIS = _datasets.datasets_partitioned_by(_datasets.Partitioning.TRADING_DAY)
# The financial statements, partitioned by report period (quarter end).
REPORT_PERIOD_APIS = _datasets.datasets_partitioned_by(_datasets.Partitioning.REPORT_PERIOD)
# The market tables factor_daily's formulas read (docs/factors.md).
FACTOR_INPUT_APIS = ("daily", "adj_factor", "daily_basic")

# The datasets each open day must have stored by the freshness deadline, and the name of
# their freshness check (the freshness sensor evaluates it, the freshness alert reads it).
FRESHNESS_DATASETS = (*TRADING_DAY_APIS, FACTOR_TABLE)
FRESHNESS_CHECK = "stored_by_deadline"

# Rows per call before tushare truncates a reply; a reply holding exactly this many rows
# is paged.
DEFAULT_ROW_LIMIT = _datasets.DEFAULT_ROW_LIMIT
API_ROW_LIMITS: dict[str, int] = {
    **{name: d.row_limit for name, d in DATASETS.items()},
    **_financials.VIP_ROW_LIMITS,
}

# tushare's refusal of an API the account has no permission for (its error message; the
# code is not reliable): the report-period syncs fall back from *_vip per stock on it.
TUSHARE_NO_PERMISSION_TEXT = "没有访问该接口的权限"

# Calls per minute per API; tushare's budget depends on the account's points
# (~50 at 120 points, ~200 at 2000+, ~500 at 5000+, as reported): a setting, not a fact.
DEFAULT_CALLS_PER_MINUTE = 200

# The fewest rows an open trading day of a table may hold, as a share of the stocks listed
# that day (stock_basic: listed on or before it, not delisted). Fewer means tushare has not
# (fully) published the day: the sync refuses the reply and the row-count check fails.
# Each trading-day dataset declares its share; factor_daily has a row per daily row.
MIN_LISTED_SHARE: dict[str, float] = {
    **{name: DATASETS[name].min_listed_share for name in TRADING_DAY_APIS},
    FACTOR_TABLE: DATASETS["daily"].min_listed_share,
}
