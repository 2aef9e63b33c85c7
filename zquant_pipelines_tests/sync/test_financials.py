"""Report-period syncs through the real tushare SDK, over HTTP, from the wire server serving
the sample market, into SQLite and PostgreSQL: each table holds every version served, the
per-stock fallback stores the same rows as the vip endpoint, re-syncs add nothing, later
syncs add restatements and late announcements without replacing a row, and the
point-in-time read agrees with a plain-pandas oracle over the frames served."""

import datetime as dt

import pandas as pd
import pytest

from zquant_pipelines.datasets import financials as fd
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.tushare_client import TushareClient, TusharePermissionError
from zquant_pipelines.sync import financials as fin
from zquant_pipelines.sync import market as sync
from zquant_pipelines_tests.support.wire_clients import FAST_RETRIES, wire_client

# H1 2026: announced by 31 August; late ones from mid-October; restatements through spring.
PERIOD = dt.date(2026, 6, 30)
EARLY, LATE = "20260905", "20261130"
ROW_LIMIT = 40
# The four APIs and their whole-market variants.
STATEMENT_APIS = (*fd.REPORT_PERIOD_APIS, *fd.VIP_FIELDS)


def client_for(server, tmp_path) -> TushareClient:
    return wire_client(
        server,
        tmp_path,
        max_attempts=2,
        **FAST_RETRIES,
        api_row_limits={name: ROW_LIMIT for name in STATEMENT_APIS},
    )


@pytest.fixture
def market_at(tushare_server_factory, tmp_path):
    """``market_at(as_of)``: (backing, server, client) of the sample market on that day, the
    statements paged at ROW_LIMIT rows."""

    def start(as_of: str):
        backing = SampleMarketSource(as_of=as_of)
        server = tushare_server_factory(
            backing, row_limits={name: ROW_LIMIT for name in STATEMENT_APIS}
        )
        return backing, server, client_for(server, tmp_path)

    return start


def served(backing, api_name: str, period: dt.date) -> pd.DataFrame:
    """The whole market's rows of the period as the server serves them, in warehouse form
    and key order."""
    reply = backing.query(fd.vip_api(api_name), period=f"{period:%Y%m%d}")
    return in_key_order(api_name, sync.to_warehouse_frame(api_name, reply))


def in_key_order(api_name: str, frame: pd.DataFrame) -> pd.DataFrame:
    keys = list(fd.KEYS[api_name])
    ordered = frame.loc[:, list(fd.field_names(api_name))].sort_values(keys)
    return ordered.reset_index(drop=True)


def stored(warehouse, api_name: str) -> pd.DataFrame:
    return in_key_order(api_name, warehouse.read_table(api_name))


def assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        left.astype(object).where(left.notna(), None),
        right.astype(object).where(right.notna(), None),
    )


@pytest.mark.parametrize("api_name", fd.REPORT_PERIOD_APIS)
def test_each_table_holds_every_version_served_whole_market(market_at, warehouse, api_name):
    backing, server, client = market_at(LATE)
    result = fin.sync_report_period(client, warehouse, api_name, PERIOD, row_limit=ROW_LIMIT)

    expected = served(backing, api_name, PERIOD)
    assert_same_rows(stored(warehouse, api_name), expected)
    assert (expected["update_flag"] == "0").any(), "the sample should restate some statements"
    calls = server.calls_to(fd.vip_api(api_name), outcome="ok")
    assert result.mode == fin.WHOLE_MARKET and result.added == len(expected)
    assert result.api_calls == len(calls) == len(expected) // ROW_LIMIT + 1
    assert not server.calls_to(api_name)


@pytest.mark.parametrize("api_name", ["income", "fina_indicator"])
def test_vip_refused_falls_back_per_stock_to_the_same_rows(market_at, warehouse, api_name):
    backing, server, client = market_at(LATE)
    sync.sync_stock_basic(client, warehouse)
    server.deny(fd.vip_api(api_name))

    result = fin.sync_report_period(client, warehouse, api_name, PERIOD, row_limit=ROW_LIMIT)

    assert_same_rows(stored(warehouse, api_name), served(backing, api_name, PERIOD))
    listed = sync.listed_on(sync.listing_spans(warehouse), PERIOD)
    per_stock = server.calls_to(api_name, outcome="ok")
    assert result.mode == fin.PER_STOCK and result.vip_refused
    assert result.stocks_asked == int(listed.sum()) == len(per_stock)
    assert len(server.calls_to(fd.vip_api(api_name), outcome="no_permission")) == 1
    assert result.api_calls == len(server.calls_to(fd.vip_api(api_name))) + len(per_stock)
    assert {call.params["period"] for call in per_stock} == {f"{PERIOD:%Y%m%d}"}


def test_whole_market_mode_raises_the_refusal_instead_of_falling_back(market_at, warehouse):
    _, server, client = market_at(LATE)
    server.deny("income_vip")
    with pytest.raises(TusharePermissionError, match="没有访问该接口的权限"):
        fin.sync_report_period(
            client, warehouse, "income", PERIOD, mode=fin.WHOLE_MARKET, row_limit=ROW_LIMIT
        )
    assert warehouse.count_rows("income") == 0 and not server.calls_to("income")


def test_per_stock_needs_the_stock_list(market_at, warehouse):
    _, _, client = market_at(LATE)
    with pytest.raises(ValueError, match="stock_basic lists no stock at 2026-06-30"):
        fin.sync_report_period(
            client, warehouse, "income", PERIOD, mode=fin.PER_STOCK, row_limit=ROW_LIMIT
        )


def test_resync_is_a_noop_and_later_versions_are_added_beside_the_stored_ones(market_at, warehouse):
    early_backing, _, early_client = market_at(EARLY)
    late_backing, _, late_client = market_at(LATE)
    first = fin.sync_report_period(early_client, warehouse, "income", PERIOD, row_limit=ROW_LIMIT)
    early_rows = stored(warehouse, "income")

    again = fin.sync_report_period(early_client, warehouse, "income", PERIOD, row_limit=ROW_LIMIT)
    assert (again.added, again.changed, again.unchanged) == (0, 0, first.added)
    assert_same_rows(stored(warehouse, "income"), early_rows)

    later = fin.sync_report_period(late_client, warehouse, "income", PERIOD, row_limit=ROW_LIMIT)
    now = stored(warehouse, "income")
    late_served = served(late_backing, "income", PERIOD)
    # Every version ever served is kept, the early ones as they were.
    expected = in_key_order("income", pd.concat([early_rows, late_served]).drop_duplicates())
    assert_same_rows(now, expected)
    assert later.added == len(now) - len(early_rows) > 0 and later.changed == 0
    assert later.not_sent == len(now) - len(late_served) > 0

    restated = late_served.loc[late_served["update_flag"] == "0", "ts_code"]
    early_codes = set(early_rows["ts_code"])
    restated_since = [code for code in restated if code in early_codes]
    assert restated_since, "some statement should be restated between the two syncs"
    versions = now[now["ts_code"] == restated_since[0]]
    # The first version as first served (flag 1), as flagged since (0), and the restatement.
    assert sorted(versions["update_flag"]) == ["0", "1", "1"]
    assert versions["ann_date"].nunique() == 2
    late_codes = set(late_served["ts_code"]) - early_codes
    assert late_codes, "some stock should announce after the early sync"
    assert early_backing.query("income", ts_code=sorted(late_codes)[0], period="20260630").empty


def test_a_version_tushare_changed_in_place_is_reported_changed_and_updated(market_at, warehouse):
    _, server, client = market_at(LATE)
    fin.sync_report_period(client, warehouse, "cashflow", PERIOD, row_limit=ROW_LIMIT)
    before = stored(warehouse, "cashflow")
    column = list(fd.field_names("cashflow")).index("n_cashflow_act")

    def edit(data):
        data["items"][0][column] = 12345.5

    server.tamper_next("cashflow_vip", edit)
    result = fin.sync_report_period(client, warehouse, "cashflow", PERIOD, row_limit=ROW_LIMIT)

    assert (result.added, result.changed) == (0, 1)
    after = stored(warehouse, "cashflow")
    assert (after["n_cashflow_act"] == 12345.5).sum() == 1
    assert (
        (after.drop(columns="n_cashflow_act") == before.drop(columns="n_cashflow_act")).all().all()
    )


def test_a_reply_of_another_period_is_refused_and_nothing_is_written(market_at, warehouse):
    _, server, client = market_at(LATE)
    column = list(fd.field_names("income")).index("end_date")

    def edit(data):
        data["items"][0][column] = "20260331"

    server.tamper_next("income_vip", edit)
    with pytest.raises(ValueError, match="end_date"):
        fin.sync_report_period(client, warehouse, "income", PERIOD, row_limit=ROW_LIMIT)
    assert warehouse.count_rows("income") == 0


def test_bad_period_and_api_are_refused_naming_them(warehouse):
    source = SampleMarketSource(as_of=LATE)
    with pytest.raises(ValueError, match="2026-06-29 is not a report period"):
        fin.sync_report_period(source, warehouse, "income", dt.date(2026, 6, 29))
    with pytest.raises(ValueError, match="'daily' is not a report-period API"):
        fin.sync_report_period(source, warehouse, "daily", PERIOD)


def test_recent_periods_are_the_last_quarter_ends_on_or_before_the_day():
    assert fin.recent_periods(dt.date(2026, 12, 2)) == [
        dt.date(2025, 12, 31),
        dt.date(2026, 3, 31),
        dt.date(2026, 6, 30),
        dt.date(2026, 9, 30),
    ]
    assert fin.recent_periods(dt.date(2026, 9, 30), 2) == [
        dt.date(2026, 6, 30),
        dt.date(2026, 9, 30),
    ]
    assert fin.report_periods(dt.date(2025, 11, 1), dt.date(2026, 3, 31)) == [
        dt.date(2025, 12, 31),
        dt.date(2026, 3, 31),
    ]


# --- point in time ------------------------------------------------------------------------

PIT_PERIODS = [dt.date(2025, 12, 31), dt.date(2026, 3, 31), dt.date(2026, 6, 30)]
PIT_DAYS = ["20260115", "20260301", "20260430", "20260501", "20260720", "20260831", "20261015"]
PIT_DAYS += [LATE, "20270101"]


def pit_oracle(frames: list[pd.DataFrame], day: str, codes: list[str]) -> pd.DataFrame:
    """Plain pandas over the wire-format frames served: per stock and period, of the rows
    whose announcement dates are all on or before ``day``, the one announced last."""
    rows = pd.concat(frames).drop_duplicates()
    rows = rows[rows["ts_code"].isin(codes)]
    known = (
        rows[["ann_date", "f_ann_date"]].max(axis=1) if "f_ann_date" in rows else rows["ann_date"]
    )
    rows = rows.assign(known=known)[known <= day]
    picked = []
    for _, versions in rows.groupby(["ts_code", "end_date"]):
        latest = versions[versions["known"] == versions["known"].max()]
        picked.append(latest[latest["update_flag"] == latest["update_flag"].max()].iloc[:1])
    if not picked:
        return rows.iloc[:0]
    return pd.concat(picked).sort_values(["ts_code", "end_date"])


@pytest.mark.parametrize("api_name", ["income", "fina_indicator"])
def test_point_in_time_reads_match_a_pandas_oracle_without_look_ahead(
    market_at, warehouse, api_name
):
    served_frames = []
    for as_of in (EARLY, LATE):
        backing, _, client = market_at(as_of)
        for period in PIT_PERIODS:
            fin.sync_report_period(client, warehouse, api_name, period, row_limit=ROW_LIMIT)
            served_frames.append(backing.query(fd.vip_api(api_name), period=f"{period:%Y%m%d}"))
    everything = pd.concat(served_frames)
    restated = everything.loc[everything["update_flag"] == "0", "ts_code"].unique()[:3]
    h1 = everything[everything["end_date"] == "20260630"]
    late = h1.loc[h1["ann_date"] > "20260915", "ts_code"].unique()[:3]
    assert len(restated) and len(late)
    codes = sorted({*restated, *late, *everything["ts_code"].unique()[:5]})

    for day in PIT_DAYS:
        got = fin.statements_as_of(
            warehouse, api_name, dt.date.fromisoformat(f"{day[:4]}-{day[4:6]}-{day[6:]}"), codes
        )
        expected = pit_oracle(served_frames, day, codes)
        expected = sync.to_warehouse_frame(api_name, expected.drop(columns="known"))
        assert_same_rows(
            got.loc[:, list(fd.field_names(api_name))].reset_index(drop=True),
            expected.reset_index(drop=True),
        )
        assert (
            got[fin.KNOWN_DATE] <= dt.date.fromisoformat(f"{day[:4]}-{day[4:6]}-{day[6:]}")
        ).all()


def test_point_in_time_switches_to_the_restatement_on_its_day_only(market_at, warehouse):
    backing, _, client = market_at(LATE)
    fin.sync_report_period(client, warehouse, "balancesheet", PERIOD, row_limit=ROW_LIMIT)
    rows = served(backing, "balancesheet", PERIOD)
    restated = rows[rows["update_flag"] == "1"].merge(
        rows.loc[rows["update_flag"] == "0", ["ts_code"]], on="ts_code"
    )
    code, restated_on = restated["ts_code"].iloc[0], restated["ann_date"].iloc[0]
    first = rows[(rows["ts_code"] == code) & (rows["update_flag"] == "0")]

    before = fin.statements_as_of(
        warehouse, "balancesheet", restated_on - dt.timedelta(days=1), [code]
    )
    on_the_day = fin.statements_as_of(warehouse, "balancesheet", restated_on, [code])

    assert before["total_assets"].tolist() == first["total_assets"].tolist()
    assert on_the_day["total_assets"].tolist() == restated["total_assets"].iloc[:1].tolist()
    assert before["total_assets"].iloc[0] != on_the_day["total_assets"].iloc[0]
    # f_ann_date alone (the first announcement) would have shown the restatement early.
    assert on_the_day["f_ann_date"].iloc[0] < restated_on


def test_calls_per_year_each_way():
    # 5,400 stocks, 5,600 rows a period (versions included), pages of 100 rows.
    assert fin.calls_per_year(fin.WHOLE_MARKET, 5400, 5600) == 4 * 4 * 57
    assert fin.calls_per_year(fin.PER_STOCK, 5400, 5600) == 4 * 4 * 5400
