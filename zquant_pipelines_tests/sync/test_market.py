"""Market syncs through the real tushare SDK, over HTTP, from the wire server serving the
sample market, into SQLite and PostgreSQL: the tables hold exactly what was served. Each day
written is reported as it goes; days an earlier attempt wrote are not fetched again."""

import datetime as dt
import math
import threading

import pandas as pd
import pytest

from zquant_pipelines.constants import API_FIELDS, API_ROW_LIMITS, TRADING_DAY_APIS
from zquant_pipelines.dates import parse_tushare_date
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.tushare_client import TushareClient, TushareTransportError
from zquant_pipelines.sync import market as sync
from zquant_pipelines.sync.factors import compute_and_store_factors
from zquant_pipelines.sync.progress import DayProgress, remaining_seconds
from zquant_pipelines_tests.support.wire_clients import FAST_RETRIES, wire_client

AS_OF = "20261127"
# Around China's National Day: weekdays 2026-10-01..08 are exchange holidays.
CAL_START, CAL_END = dt.date(2026, 9, 1), dt.date(2026, 10, 31)
DAYS = [CAL_START + dt.timedelta(days=n) for n in range(27, 40)]  # 2026-09-28 .. 2026-10-10


@pytest.fixture
def backing():
    return SampleMarketSource(as_of=AS_OF)


def client_for(server, tmp_path, row_limit: int | None = None) -> TushareClient:
    return wire_client(
        server,
        tmp_path,
        max_attempts=3,
        **FAST_RETRIES,
        api_row_limits={api: row_limit for api in API_FIELDS} if row_limit else {},
    )


@pytest.fixture
def server(backing, tushare_server_factory):
    return tushare_server_factory(backing)


@pytest.fixture
def source(server, tmp_path):
    return client_for(server, tmp_path)


def served(backing, api_name: str, **params) -> pd.DataFrame:
    """What the server serves, in warehouse form, in the warehouse's key order."""
    frame = sync.to_warehouse_frame(api_name, backing.query(api_name, **params))
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def stored(warehouse, table: str, day: dt.date) -> pd.DataFrame:
    frame = warehouse.read_frame(
        f"SELECT * FROM {table} WHERE trade_date = :day ORDER BY ts_code", {"day": day}
    )
    return frame.loc[:, list(API_FIELDS[table])].reset_index(drop=True)


def open_days_of(backing) -> list[dt.date]:
    calendar = backing.query(
        "trade_cal", exchange="SSE", start_date=f"{DAYS[0]:%Y%m%d}", end_date=f"{DAYS[-1]:%Y%m%d}"
    )
    return sorted(parse_tushare_date(d) for d in calendar.loc[calendar["is_open"] == 1, "cal_date"])


def sync_reference(source, warehouse):
    sync.sync_stock_basic(source, warehouse)
    sync.sync_trade_cal(source, warehouse, CAL_START, CAL_END)


def test_reference_tables_hold_what_was_served(backing, source, server, warehouse):
    basic = sync.sync_stock_basic(source, warehouse)
    assert basic.api_calls == 3  # L, D and P: no survivorship bias
    expected = pd.concat(
        [backing.query("stock_basic", list_status=s) for s in ("L", "D", "P")], ignore_index=True
    )
    table = warehouse.read_table("stock_basic")
    assert len(table) == len(expected) >= 300
    assert set(table["list_status"]) == {"L", "D", "P"}
    calendar = sync.sync_trade_cal(source, warehouse, CAL_START, CAL_END)
    assert calendar.rows == 2 * ((CAL_END - CAL_START).days + 1)  # SSE and SZSE, every day
    assert warehouse.count_rows("trade_cal") == calendar.rows


def test_trading_days_one_call_per_open_day_and_exact_rows(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    open_days = open_days_of(backing)
    closed = [d for d in DAYS if d not in open_days]
    assert dt.date(2026, 10, 5) in closed and dt.date(2026, 9, 28) in open_days
    server.reset_calls()
    for api_name in TRADING_DAY_APIS:
        result = sync.sync_trading_days(source, warehouse, api_name, DAYS, shape=sync.PER_DAY)
        assert result.trade_dates == open_days
        assert result.closed_dates == closed
        calls = server.calls_to(api_name)
        assert [c.params["trade_date"] for c in calls] == [f"{d:%Y%m%d}" for d in open_days]
        for day in open_days:
            pd.testing.assert_frame_equal(
                stored(warehouse, api_name, day),
                served(backing, api_name, trade_date=f"{day:%Y%m%d}"),
                check_dtype=False,
            )
        for day in closed:
            assert warehouse.count_rows(api_name, trade_date=day) == 0


def test_resync_changes_nothing(backing, source, warehouse):
    sync_reference(source, warehouse)
    sync.sync_trading_days(source, warehouse, "daily", DAYS)
    before = warehouse.read_table("daily")
    sync.sync_trading_days(source, warehouse, "daily", DAYS)
    pd.testing.assert_frame_equal(warehouse.read_table("daily"), before)


def test_reply_at_the_row_limit_is_paged(backing, tushare_server_factory, tmp_path, warehouse):
    server = tushare_server_factory(backing, row_limit=100)
    source = client_for(server, tmp_path, row_limit=100)
    sync_reference(source, warehouse)
    day = open_days_of(backing)[0]
    expected = served(backing, "daily", trade_date=f"{day:%Y%m%d}")
    server.reset_calls()
    sync.sync_trading_days(source, warehouse, "daily", [day])
    assert len(server.calls_to("daily")) == len(expected) // 100 + 1
    pd.testing.assert_frame_equal(stored(warehouse, "daily", day), expected, check_dtype=False)


@pytest.mark.parametrize("api_name", ["stk_factor", "stk_factor_pro"])
def test_technical_factors_page_at_their_own_row_limit(
    api_name, backing, source, server, warehouse
):
    """Client and server at tushare's limits: the technical factors' 10,000 rows a call,
    not daily's 6,000; a code-list call over two months of the market spans two pages."""
    limit = API_ROW_LIMITS[api_name]
    assert limit == 10_000 != API_ROW_LIMITS["daily"]
    sync_reference(source, warehouse)
    weekdays = [d.date() for d in pd.bdate_range(CAL_START, CAL_END)]
    server.reset_calls()
    result = sync.sync_trading_days(source, warehouse, api_name, weekdays, shape=sync.CODE_LISTS)
    pages = server.calls_to(api_name)
    assert [(int(c.params["offset"]), int(c.params["limit"])) for c in pages] == [
        (0, limit),
        (limit, limit),
    ]
    assert limit < result.rows < 2 * limit
    expected = served(
        backing, api_name, start_date=f"{CAL_START:%Y%m%d}", end_date=f"{CAL_END:%Y%m%d}"
    )
    table = warehouse.read_table(api_name).loc[:, list(API_FIELDS[api_name])]
    table = table.sort_values(["ts_code", "trade_date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_failed_sync_leaves_the_warehouse_as_it_was(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    sync.sync_trading_days(source, warehouse, "daily", DAYS)
    before = warehouse.read_table("daily")
    server.fail_next(100, status=500)
    with pytest.raises(TushareTransportError):
        sync.sync_trading_days(source, warehouse, "daily", DAYS)
    pd.testing.assert_frame_equal(warehouse.read_table("daily"), before)


class CorruptDay:
    """The sample market, except one day's reply has a bad row at the end."""

    def __init__(self, backing, bad_day: str):
        self.backing, self.bad_day = backing, bad_day

    def query(self, api_name, **params):
        frame = self.backing.query(api_name, **params)
        if api_name == "daily" and params.get("trade_date") == self.bad_day:
            frame["close"] = frame["close"].astype(object)
            frame.loc[len(frame) - 1, "close"] = "not a price"
        return frame


def test_bad_row_mid_partition_rolls_the_day_back(backing, warehouse):
    sync_reference(backing, warehouse)
    day = open_days_of(backing)[0]
    sync.sync_trading_days(backing, warehouse, "daily", [day])
    before = warehouse.read_table("daily")
    with pytest.raises(ValueError, match="not a price"):
        sync.sync_trading_days(CorruptDay(backing, f"{day:%Y%m%d}"), warehouse, "daily", [day])
    pd.testing.assert_frame_equal(warehouse.read_table("daily"), before)


class FailsOnDay:
    """The sample market, except the call for one day fails as a dropped connection does."""

    def __init__(self, backing, bad_day: dt.date):
        self.backing, self.bad_day = backing, f"{bad_day:%Y%m%d}"

    def query(self, api_name, **params):
        if params.get("trade_date") == self.bad_day:
            raise TushareTransportError(f"{api_name} {self.bad_day}: connection reset")
        return self.backing.query(api_name, **params)


def test_a_failed_call_mid_range_keeps_the_days_before_and_writes_none_after(backing, warehouse):
    sync_reference(backing, warehouse)
    days = open_days_of(backing)
    with pytest.raises(TushareTransportError, match=f"{days[2]:%Y%m%d}"):
        sync.sync_trading_days(
            FailsOnDay(backing, days[2]), warehouse, "daily", days, shape=sync.PER_DAY
        )
    written = [warehouse.count_rows("daily", day) > 0 for day in days]
    assert written == [True, True] + [False] * (len(days) - 2)


def test_fetched_ahead_keeps_order_and_fetches_the_next_item_during_the_current_one():
    started = {item: threading.Event() for item in range(4)}
    handled = []

    def fetch(item: int) -> str:
        started[item].set()
        return f"reply {item}"

    for item, reply in sync.fetched_ahead(fetch, list(range(4))):
        if item + 1 < 4:
            assert started[item + 1].wait(timeout=10), f"item {item + 1} not fetched ahead"
        if item + 2 < 4:
            assert not started[item + 2].is_set(), "fetched more than one item ahead"
        handled.append((item, reply))
    assert handled == [(item, f"reply {item}") for item in range(4)]


def test_fetched_ahead_raises_a_failed_fetch_in_its_turn():
    def fetch(item: int) -> int:
        if item == 2:
            raise ValueError("no reply for item 2")
        return item

    handled = []
    with pytest.raises(ValueError, match="item 2"):
        for item, _ in sync.fetched_ahead(fetch, [0, 1, 2, 3]):
            handled.append(item)
    assert handled == [0, 1]


def test_a_caller_that_stops_early_does_not_wait_for_the_fetch_in_flight():
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def fetch(item: int) -> int:
        if item == 1:
            started.set()
            release.wait(timeout=30)
            finished.set()
        return item

    replies = sync.fetched_ahead(fetch, [0, 1])
    try:
        assert next(replies) == (0, 0)
        assert started.wait(timeout=10)
        # The caller's write of item 0 failed: it stops while item 1 is in flight.
        replies.close()
        assert not finished.is_set()
    finally:
        release.set()


def test_closed_day_costs_no_call(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    server.reset_calls()
    result = sync.sync_trading_days(source, warehouse, "daily", [dt.date(2026, 10, 6)])
    assert result.api_calls == 0 and result.closed_dates == [dt.date(2026, 10, 6)]
    assert server.calls_to("daily") == []


def test_day_outside_the_synced_calendar_is_a_clear_error(source, warehouse):
    sync_reference(source, warehouse)
    with pytest.raises(ValueError, match="trade_cal has no SSE row for 2026-11-02"):
        sync.sync_trading_days(source, warehouse, "daily", [dt.date(2026, 11, 2)])


def test_repair_of_a_few_stocks_is_one_call_and_leaves_others(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    sync.sync_trading_days(source, warehouse, "daily", DAYS)
    codes = sorted(warehouse.read_table("daily")["ts_code"].unique())[:2]
    untouched = warehouse.read_frame(
        "SELECT COUNT(*) AS n FROM daily WHERE ts_code NOT IN (:a, :b)",
        {"a": codes[0], "b": codes[1]},
    )
    server.reset_calls()
    result = sync.sync_stocks_over_range(source, warehouse, "daily", codes, DAYS[0], DAYS[-1])
    assert result.api_calls == 1 and len(server.calls_to("daily")) == 1
    expected = served(
        backing,
        "daily",
        ts_code=",".join(codes),
        start_date=f"{DAYS[0]:%Y%m%d}",
        end_date=f"{DAYS[-1]:%Y%m%d}",
    )
    assert result.rows == len(expected) > 0
    after = warehouse.read_frame(
        "SELECT COUNT(*) AS n FROM daily WHERE ts_code NOT IN (:a, :b)",
        {"a": codes[0], "b": codes[1]},
    )
    assert int(after["n"].iloc[0]) == int(untouched["n"].iloc[0])


def test_bad_ranges_name_the_values(source, warehouse):
    with pytest.raises(ValueError, match="start_date 20261010 is after end_date 20261001"):
        sync.sync_trade_cal(source, warehouse, dt.date(2026, 10, 10), dt.date(2026, 10, 1))
    with pytest.raises(ValueError, match="api_name 'weekly'"):
        sync.sync_trading_days(source, warehouse, "weekly", DAYS)


# --- a day tushare has not (fully) published: refused, the stored day kept ---------------


def not_published(api_name: str, day: dt.date, rows: int) -> str:
    return (
        f"{api_name} for {day:%Y-%m-%d} is not published yet: tushare replied {rows} rows,"
        r" expected at least \d+ \(\d+% of the \d+ stocks listed that day\)"
    )


@pytest.mark.parametrize("api_name", TRADING_DAY_APIS)
@pytest.mark.parametrize("rows", [0, 40])
def test_empty_or_short_reply_for_an_open_day_keeps_the_stored_day(
    backing, source, server, warehouse, api_name, rows
):
    sync_reference(source, warehouse)
    day = open_days_of(backing)[0]
    sync.sync_trading_days(source, warehouse, api_name, [day])
    before = warehouse.read_table(api_name)
    assert len(before) > 200
    server.short_reply(api_name, rows, trade_date=f"{day:%Y%m%d}")

    with pytest.raises(sync.DayNotPublishedError, match=not_published(api_name, day, rows)):
        sync.sync_trading_days(source, warehouse, api_name, [day])

    pd.testing.assert_frame_equal(warehouse.read_table(api_name), before)


def test_first_sync_of_an_unpublished_day_writes_nothing(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    day = open_days_of(backing)[0]
    server.short_reply("daily", 0, trade_date=f"{day:%Y%m%d}")

    with pytest.raises(sync.DayNotPublishedError, match=not_published("daily", day, 0)):
        sync.sync_trading_days(source, warehouse, "daily", [day])

    assert warehouse.count_rows("daily") == 0


def test_a_day_with_some_stocks_suspended_is_not_refused(backing, source, server, warehouse):
    """daily has no row for a suspended stock: a few missing rows are a normal day."""
    sync_reference(source, warehouse)
    day = open_days_of(backing)[0]
    listed = sync.listed_stock_count(warehouse, day)
    server.short_reply("daily", listed - 10, trade_date=f"{day:%Y%m%d}")

    result = sync.sync_trading_days(source, warehouse, "daily", [day])

    assert result.rows == warehouse.count_rows("daily", day) == listed - 10


def test_without_a_stock_list_an_empty_reply_is_still_refused(backing, source, server, warehouse):
    """No stock is known (stock_basic not synced): the row count cannot be judged, but an
    open day with no rows at all is never taken as complete."""
    sync.sync_trade_cal(source, warehouse, CAL_START, CAL_END)
    day = open_days_of(backing)[0]
    server.short_reply("daily", 0, trade_date=f"{day:%Y%m%d}")

    with pytest.raises(
        sync.DayNotPublishedError,
        match=f"daily for {day:%Y-%m-%d} is not published yet: tushare replied 0 rows",
    ):
        sync.sync_trading_days(source, warehouse, "daily", [day])
    assert warehouse.count_rows("daily") == 0

    server.clear_faults()
    assert sync.sync_trading_days(source, warehouse, "daily", [day]).rows > 0


def test_latest_open_day_on_or_before_a_day(source, warehouse):
    sync_reference(source, warehouse)
    friday, sunday = dt.date(2026, 9, 18), dt.date(2026, 9, 20)

    assert sync.latest_open_day(warehouse, sunday) == friday
    assert sync.latest_open_day(warehouse, friday) == friday
    # Mid-Autumn Friday 2026-09-25 is closed too; then the National Day closure.
    assert sync.latest_open_day(warehouse, dt.date(2026, 9, 27)) == dt.date(2026, 9, 24)
    assert sync.latest_open_day(warehouse, dt.date(2026, 10, 6)) == dt.date(2026, 9, 30)
    with pytest.raises(ValueError, match="trade_cal has no SSE row for 2026-11-02"):
        sync.latest_open_day(warehouse, dt.date(2026, 11, 2))


# --- the calls' shape: one call per day, or code lists over windows of days -------------


def test_planner_keeps_one_call_per_day_while_code_lists_save_none():
    days = [dt.date(2026, 1, 5) + dt.timedelta(days=n) for n in range(7)]
    # 5,000 stocks a day against 6,000 rows a call: a window of k days costs
    # 5000k // 6000 + 1 calls, k for k <= 6 (a tie keeps per day), 6 for 7 days.
    for count in range(1, 7):
        plan = sync.plan_calls(days[:count], [5000] * count, row_limit=6000)
        assert (plan.shape, plan.calls) == (sync.PER_DAY, count)
        assert plan.windows == tuple((day,) for day in days[:count])
    plan = sync.plan_calls(days, [5000] * 7, row_limit=6000)
    assert (plan.shape, plan.calls, plan.windows) == (sync.CODE_LISTS, 6, (tuple(days),))


def test_planner_stays_within_115_percent_of_the_page_floor_from_250_days():
    for n_days in (250, 1000, 2500):
        days = [dt.date(2010, 1, 1) + dt.timedelta(days=n) for n in range(n_days)]
        listed = [4000 + 3 * n % 1500 for n in range(n_days)]  # a market that grows
        plan = sync.plan_calls(days, listed, row_limit=6000)
        floor = math.ceil(sum(listed) / 6000)
        per_day = sync.plan_calls(days, listed, row_limit=6000, shape=sync.PER_DAY)
        assert plan.shape == sync.CODE_LISTS and plan.calls <= 1.15 * floor < per_day.calls
        # Every day once, in order; no window needs more than WINDOW_PAGES pages.
        assert [day for window in plan.windows for day in window] == days
        by_day = dict(zip(days, listed, strict=True))
        assert all(sum(by_day[d] for d in w) <= 50 * 6000 for w in plan.windows)


def test_planner_keeps_per_day_without_listed_stocks_and_names_bad_input():
    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)]
    assert sync.plan_calls(days, [0, 0, 0], row_limit=6000).shape == sync.PER_DAY
    with pytest.raises(ValueError, match="days has 3 entries but listed has 2"):
        sync.plan_calls(days, [1, 2], row_limit=6000)
    with pytest.raises(ValueError, match="shape 'weekly'"):
        sync.plan_calls(days, [1, 2, 3], row_limit=6000, shape="weekly")


def sqlite_warehouse(path):
    from zquant_pipelines.resources.warehouse import Warehouse

    return Warehouse(url=f"sqlite:///{path}")


def test_per_day_and_code_lists_store_identical_tables(backing, tushare_server_factory, tmp_path):
    """The same range through the real SDK, once per day and once per code list (paged at
    250 rows, so code-list replies span pages and days): identical tables, fewer calls."""
    server = tushare_server_factory(backing, row_limit=250)
    source = client_for(server, tmp_path, row_limit=250)
    tables, calls = {}, {}
    for shape in (sync.PER_DAY, sync.CODE_LISTS):
        warehouse = sqlite_warehouse(tmp_path / f"{shape}.db")
        sync_reference(source, warehouse)
        server.reset_calls()
        for api_name in TRADING_DAY_APIS:
            result = sync.sync_trading_days(
                source, warehouse, api_name, DAYS, row_limit=250, shape=shape
            )
            assert result.trade_dates == open_days_of(backing)
        calls[shape] = len(server.calls)
        tables[shape] = {api: warehouse.read_table(api) for api in TRADING_DAY_APIS}
        warehouse.dispose()
    for api_name in TRADING_DAY_APIS:
        assert len(tables[sync.PER_DAY][api_name]) > 1000
        pd.testing.assert_frame_equal(
            tables[sync.CODE_LISTS][api_name], tables[sync.PER_DAY][api_name]
        )
    assert calls[sync.CODE_LISTS] < calls[sync.PER_DAY]


class DropsDay:
    """The sample market, except every reply lacks one day's rows (a range reply from
    before tushare published that day)."""

    def __init__(self, backing, day: dt.date):
        self.backing, self.day = backing, f"{day:%Y%m%d}"

    def query(self, api_name, **params):
        frame = self.backing.query(api_name, **params)
        if api_name in TRADING_DAY_APIS:
            frame = frame[frame["trade_date"] != self.day].reset_index(drop=True)
        return frame


def test_code_lists_refuse_a_day_missing_from_the_reply_and_write_only_the_days_before(
    backing, tushare_server_factory, tmp_path, warehouse
):
    api_name = "daily"
    days = open_days_of(backing)
    server = tushare_server_factory(DropsDay(backing, days[2]))
    source = client_for(server, tmp_path)
    sync_reference(source, warehouse)

    with pytest.raises(sync.DayNotPublishedError, match=not_published(api_name, days[2], 0)):
        sync.sync_trading_days(source, warehouse, api_name, days, shape=sync.CODE_LISTS)

    assert len(server.calls_to(api_name)) == 1  # one code-list call for the whole range
    written = [warehouse.count_rows(api_name, day) > 0 for day in days]
    assert written == [True, True] + [False] * (len(days) - 2)


def test_a_reply_row_of_a_day_not_asked_is_refused(backing):
    day, other = dt.date(2026, 9, 28), dt.date(2026, 9, 29)
    frame = sync.to_warehouse_frame(
        "daily", backing.query("daily", start_date="20260928", end_date="20260929")
    )
    with pytest.raises(ValueError, match="daily reply has rows for trade_date 2026-09-29"):
        list(sync.split_by_day("daily", frame, [day]))
    by_day = dict(sync.split_by_day("daily", frame, [day, other]))
    assert sum(map(len, by_day.values())) == len(frame)
    assert set(by_day[other]["trade_date"]) == {other}


# --- progress, and days an earlier attempt wrote -------------------------------------------


def test_each_day_written_is_reported_in_order_with_its_rows(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    open_days = open_days_of(backing)
    heard: list[DayProgress] = []
    result = sync.sync_trading_days(source, warehouse, "daily", DAYS, progress=heard.append)
    assert [(p.table, p.day, p.done, p.total) for p in heard] == [
        ("daily", day, k, len(open_days)) for k, day in enumerate(open_days, start=1)
    ]
    assert [p.rows for p in heard] == [
        warehouse.count_rows("daily", trade_date=day) for day in open_days
    ]
    assert sum(p.rows for p in heard) == result.rows
    elapsed = [p.elapsed_seconds for p in heard]
    assert elapsed == sorted(elapsed) and heard[-1].remaining_seconds == 0
    line = heard[0].describe()
    assert line.startswith(f"daily: day 1 of {len(open_days)} ({open_days[0]:%Y-%m-%d}), ")
    assert f"{heard[0].rows:,} rows" in line and "s elapsed, about" in line


def test_days_an_earlier_attempt_wrote_are_not_fetched_again(backing, source, server, warehouse):
    sync_reference(source, warehouse)
    open_days = open_days_of(backing)
    through = open_days[2]
    server.reset_calls()
    heard: list[DayProgress] = []
    result = sync.sync_trading_days(
        source, warehouse, "adj_factor", DAYS, progress=heard.append, written_through=through
    )
    pending = open_days[3:]
    calls = server.calls_to("adj_factor")
    # Whatever the calls' shape, they ask for the pending days only.
    assert min(call.asked[0] for call in calls) == f"{pending[0]:%Y%m%d}"
    assert result.resumed_dates == open_days[:3] and result.trade_dates == open_days
    assert result.api_calls == len(calls) >= 1
    assert [(p.day, p.done) for p in heard] == [(day, k) for k, day in enumerate(pending, start=4)]


def test_factor_days_are_reported_and_resumed(backing, source, warehouse):
    sync_reference(source, warehouse)
    for api_name in ("daily", "adj_factor", "daily_basic"):
        sync.sync_trading_days(source, warehouse, api_name, DAYS)
    open_days = open_days_of(backing)
    heard: list[DayProgress] = []
    result = compute_and_store_factors(
        warehouse, DAYS, progress=heard.append, written_through=open_days[0]
    )
    assert result.trade_dates == open_days and result.resumed_dates == open_days[:1]
    assert [(p.table, p.day, p.done, p.total) for p in heard] == [
        ("factor_daily", day, k, len(open_days)) for k, day in enumerate(open_days[1:], start=2)
    ]
    assert warehouse.count_rows("factor_daily", trade_date=open_days[0]) == 0


def test_time_left_is_the_pace_so_far_times_the_days_left():
    assert remaining_seconds(10.0, 2, 3) == 15.0
    assert remaining_seconds(10.0, 0, 3) is None
    assert remaining_seconds(4.0, 4, 0) == 0.0
    unknown = DayProgress("daily", dt.date(2026, 1, 5), 0, 3, 0, 0.0, None)
    assert unknown.describe().endswith("time left unknown")
