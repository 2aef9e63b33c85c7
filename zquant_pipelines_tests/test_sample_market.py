"""The sample market's realism rules, checked on the generated data.

Expected values here are public facts (exchange calendars, board price limits, tushare's
units) written independently of the module, so a wrong market fails them.
"""

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.constants import API_FIELDS, LIST_STATUSES, REPORT_PERIOD_APIS, REQUEST_FIELDS
from zquant_pipelines.sample_market import (
    EXCHANGE_CLOSURES,
    SampleMarket,
    sample_market,
)

AS_OF = "20261127"  # a Friday
EARLY_AS_OF = "20220630"
START = "20190102"
# Open days a year on the SSE (exchange statistics).
OPEN_DAYS_PER_YEAR = {2019: 244, 2020: 243, 2021: 243, 2022: 242, 2023: 242, 2024: 242, 2025: 243}
BOARD_LIMIT_PCT = {"主板": 10.0, "科创板": 20.0, "创业板": 20.0, "北交所": 30.0}
ST_LIMIT_PCT = 5.0
CHINEXT_20PCT_FROM = "20200824"
FESTIVALS = (
    "New Year",
    "Spring Festival",
    "Qingming",
    "Labour Day",
    "Dragon Boat",
    "Mid-Autumn",
    "National Day",
)


@pytest.fixture(scope="module")
def market() -> SampleMarket:
    return sample_market(as_of=AS_OF)


@pytest.fixture(scope="module")
def stocks(market) -> pd.DataFrame:
    return market.query("stock_basic", list_status="L,D,P")


@pytest.fixture(scope="module")
def daily(market) -> pd.DataFrame:
    return market.query("daily")


@pytest.fixture(scope="module")
def adj(market) -> pd.DataFrame:
    return market.query("adj_factor")


@pytest.fixture(scope="module")
def basic(market) -> pd.DataFrame:
    return market.query("daily_basic")


@pytest.fixture(scope="module")
def bars(daily, adj) -> pd.DataFrame:
    """Daily bars in date order per stock with the adj factor and the previous bar's."""
    frame = daily.merge(adj, on=["ts_code", "trade_date"], how="left")
    frame = frame.sort_values(["ts_code", "trade_date"], ignore_index=True)
    by_stock = frame.groupby("ts_code")
    frame["prev_close"] = by_stock["close"].shift()
    frame["prev_adj"] = by_stock["adj_factor"].shift()
    return frame


@pytest.fixture(scope="module")
def calendar(market) -> pd.DataFrame:
    return market.query("trade_cal", exchange="SSE")


def keys(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["ts_code"], frame["trade_date"], strict=True))


def without_bars(adj: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """adj_factor rows with no daily bar the same day, after checking every bar has one."""
    joined = adj.merge(daily[["ts_code", "trade_date"]], how="outer", indicator=True)
    assert (joined["_merge"] != "right_only").all(), "a daily bar without an adj_factor row"
    return joined[joined["_merge"] == "left_only"]


def test_every_api_answers_exactly_its_tushare_fields(market):
    a_stock = market.query("daily", trade_date=AS_OF)["ts_code"].iloc[0]
    for api_name, fields in REQUEST_FIELDS.items():
        if api_name == "stock_basic":
            window = {}
        elif api_name in REPORT_PERIOD_APIS:  # one stock (their *_vip: the whole market)
            window = {"ts_code": a_stock, "period": "20260630"}
        elif api_name.endswith("_vip"):
            window = {"period": "20260630"}
        else:
            window = {"start_date": "20261101", "end_date": AS_OF}
        frame = market.query(api_name, **window)
        assert tuple(frame.columns) == fields, api_name
        assert len(frame) > 0, api_name


def test_calendar_closes_weekends_and_national_day_week_and_opens_normal_weekdays(calendar):
    is_open = dict(zip(calendar["cal_date"], calendar["is_open"], strict=True))
    for day in range(1, 8):
        assert is_open[f"202610{day:02d}"] == 0
    assert is_open["20261124"] == 1  # a Tuesday with no holiday
    assert is_open["20260930"] == 1 and is_open["20261008"] == 1
    weekday = pd.to_datetime(calendar["cal_date"], format="%Y%m%d").dt.dayofweek
    assert (calendar.loc[weekday >= 5, "is_open"] == 0).all()
    assert calendar["is_open"].dtype == np.int64
    assert set(calendar["is_open"]) == {0, 1}


def test_calendar_open_days_per_year_match_the_exchange(calendar):
    year = calendar["cal_date"].str[:4].astype(int)
    counts = calendar[calendar["is_open"] == 1].groupby(year[calendar["is_open"] == 1]).size()
    assert {y: counts[y] for y in OPEN_DAYS_PER_YEAR} == OPEN_DAYS_PER_YEAR


def test_every_festival_is_closed_each_year_through_2027(calendar):
    closed = set(calendar.loc[calendar["is_open"] == 0, "cal_date"])
    for year in range(2019, 2028):
        spans = [c for c in EXCHANGE_CLOSURES if c[2][:4] == str(year)]
        for festival in FESTIVALS:
            assert any(festival in name for name, _, _ in spans), (year, festival)
    for name, first, last in EXCHANGE_CLOSURES:
        for day in pd.date_range(max(first, "20190101"), last).strftime("%Y%m%d"):
            assert day in closed, (name, day)
    assert calendar["cal_date"].iloc[0] >= "20271231"


def test_trade_cal_is_newest_first_with_a_pretrade_chain(market, calendar):
    assert calendar["cal_date"].is_monotonic_decreasing
    assert calendar["cal_date"].iloc[-1] == "20190101"
    oldest_first = calendar.iloc[::-1].reset_index(drop=True)
    last_open = "20181228"  # the last open day of 2018
    for cal_date, is_open, pretrade_date in oldest_first[
        ["cal_date", "is_open", "pretrade_date"]
    ].itertuples(index=False):
        assert pretrade_date == last_open, cal_date
        if is_open:
            last_open = cal_date
    szse = market.query("trade_cal", exchange="SZSE")
    assert (szse["exchange"] == "SZSE").all()
    assert szse.drop(columns="exchange").equals(calendar.drop(columns="exchange"))


def test_trade_cal_filters_by_range_and_open_flag(market):
    october = market.query("trade_cal", start_date="20261001", end_date="20261031", is_open="1")
    assert list(october["cal_date"].iloc[[0, -1]]) == ["20261030", "20261008"]
    assert (october["is_open"] == 1).all() and len(october) == 17
    closed = market.query("trade_cal", start_date="20261001", end_date="20261011", is_open=0)
    assert list(closed["cal_date"]) == [f"202610{d:02d}" for d in (11, 10, 7, 6, 5, 4, 3, 2, 1)]


def test_codes_names_and_boards_are_consistent(stocks):
    patterns = {
        ("主板", "SSE"): r"^60[0135]\d{3}\.SH$",
        ("科创板", "SSE"): r"^688\d{3}\.SH$",
        ("主板", "SZSE"): r"^00[0-3]\d{3}\.SZ$",
        ("创业板", "SZSE"): r"^30[01]\d{3}\.SZ$",
        ("北交所", "BSE"): r"^(43|8[37])\d{4}\.BJ$",
    }
    groups = stocks.groupby(["market", "exchange"])
    assert set(groups.groups) == set(patterns)
    for (market_name, exchange), group in groups:
        assert group["ts_code"].str.match(patterns[market_name, exchange]).all()
    assert (stocks["symbol"] == stocks["ts_code"].str[:6]).all()
    assert stocks["ts_code"].is_unique and stocks["name"].is_unique
    assert stocks["name"].str.len().between(4, 7).all()
    assert stocks["area"].notna().all() and stocks["industry"].notna().all()
    connect = {"SSE": {"H", "N"}, "SZSE": {"S", "N"}, "BSE": {"N"}}
    for exchange, group in stocks.groupby("exchange"):
        assert set(group["is_hs"]) <= connect[exchange]
    assert stocks["ts_code"].is_monotonic_increasing


def test_list_statuses_default_to_listed_and_mark_delisted_and_paused(market, stocks):
    default = market.query("stock_basic")
    assert set(default["list_status"]) == {"L"}
    by_status = {s: market.query("stock_basic", list_status=s) for s in LIST_STATUSES}
    assert pd.concat(by_status.values()).sort_values("ts_code", ignore_index=True).equals(stocks)
    assert default.equals(by_status["L"])
    assert len(by_status["D"]) >= 3 and len(by_status["P"]) >= 1
    delisted = by_status["D"]
    assert (delisted["delist_date"] <= AS_OF).all()
    assert (delisted["delist_date"] > delisted["list_date"]).all()
    assert stocks.loc[stocks["list_status"] != "D", "delist_date"].isna().all()
    assert (stocks["list_date"] <= AS_OF).all()
    assert (stocks["list_date"] > START).sum() >= 20  # listings during the history
    st = stocks[stocks["name"].str.contains("ST")]
    assert len(st) >= 3 and (st["market"] == "主板").all()
    one = market.query("stock_basic", ts_code=stocks["ts_code"].iloc[5], list_status="L,D,P")
    assert one.equals(stocks.iloc[[5]].reset_index(drop=True))


def test_bars_start_at_listing_and_stop_before_delisting(stocks, daily, adj):
    first_bar = daily.groupby("ts_code")["trade_date"].min()
    last_bar = daily.groupby("ts_code")["trade_date"].max()
    first_adj = adj.groupby("ts_code")["trade_date"].min()
    last_adj = adj.groupby("ts_code")["trade_date"].max()
    listed_late = stocks[stocks["list_date"] > START]
    assert (first_bar[listed_late["ts_code"]].to_numpy() == listed_late["list_date"]).all()
    assert (first_adj[listed_late["ts_code"]].to_numpy() == listed_late["list_date"]).all()
    early = stocks[stocks["list_date"] <= START]
    assert (first_adj[early["ts_code"]] <= "20190104").all()
    market_last_day = daily["trade_date"].max()
    assert market_last_day == AS_OF
    delisted = stocks[stocks["list_status"] == "D"]
    assert (last_bar[delisted["ts_code"]].to_numpy() < delisted["delist_date"]).all()
    assert (last_adj[delisted["ts_code"]].to_numpy() < delisted["delist_date"]).all()
    paused = stocks[stocks["list_status"] == "P"]["ts_code"]
    assert (last_bar[paused] < market_last_day).all()
    assert (last_adj[paused] == market_last_day).all()  # still listed: factors continue
    listed = stocks[stocks["list_status"] == "L"]["ts_code"]
    assert (last_adj[listed] == market_last_day).all()


def test_suspended_days_have_an_adj_factor_but_no_bars(daily, adj, basic):
    key_columns = ["ts_code", "trade_date"]
    assert basic[key_columns].equals(daily[key_columns])
    suspended = without_bars(adj, daily)
    assert len(suspended) > 0
    stocks_with_suspensions = set(suspended["ts_code"])
    old_stocks = set(adj.loc[adj["trade_date"] < "20200101", "ts_code"])
    assert len(stocks_with_suspensions & old_stocks) >= 0.9 * len(old_stocks)
    assert daily.groupby("trade_date").size().min() > 0.5 * adj.groupby("trade_date").size().min()


def test_moves_stay_within_each_boards_daily_limit(bars, stocks):
    is_st = stocks["name"].str.contains("ST")
    kinds = stocks["market"] + is_st.map({True: "ST", False: ""})
    stock_limits = stocks["market"].map(BOARD_LIMIT_PCT).where(~is_st, ST_LIMIT_PCT)
    frame = bars
    kind = frame["ts_code"].map(dict(zip(stocks["ts_code"], kinds, strict=True)))
    limit = frame["ts_code"].map(dict(zip(stocks["ts_code"], stock_limits, strict=True)))
    early_chinext = (kind == "创业板") & (frame["trade_date"] < CHINEXT_20PCT_FROM)
    limit = limit.where(~early_chinext, 10.0) / 100
    # Limit prices are pre_close x (1 ± limit) rounded half up to the cent.
    up = np.floor(frame["pre_close"] * (1 + limit) * 100 + 0.5 + 1e-6) / 100
    down = np.floor(frame["pre_close"] * (1 - limit) * 100 + 0.5 + 1e-6) / 100
    for column in ("open", "high", "low", "close"):
        assert (frame[column] <= up + 1e-9).all(), column
        assert (frame[column] >= down - 1e-9).all(), column
    # The limits bind: every kind of stock has days at (or a cent from) its limit.
    move = (frame["close"] / frame["pre_close"] - 1).abs()
    at_limit = move >= limit - 0.011
    assert set(kind[at_limit]) == set(kinds)
    late_chinext = (kind == "创业板") & ~early_chinext
    assert move[late_chinext].max() > 0.15
    assert move[early_chinext].max() < 0.11


def test_bars_are_consistent(daily):
    low, high = daily["low"], daily["high"]
    assert (low <= daily[["open", "close"]].min(axis=1)).all()
    assert (high >= daily[["open", "close"]].max(axis=1)).all()
    assert (low > 0).all()
    for column in ("open", "high", "low", "close", "pre_close", "change"):
        assert np.allclose(daily[column], daily[column].round(2), atol=1e-9), column
    assert np.allclose(daily["change"], daily["close"] - daily["pre_close"], atol=1e-9)
    # pct_chg is change / pre_close in %, to 4 decimals.
    exact_pct = daily["change"] / daily["pre_close"] * 100
    assert np.allclose(daily["pct_chg"], exact_pct, atol=5.01e-5, rtol=0)
    assert (daily["vol"] > 0).all()
    # amount (千元) = lots x 100 shares x an average price within the day's range / 1000.
    average = daily["amount"] * 1000 / (daily["vol"] * 100)
    assert (average >= low - 0.01).all() and (average <= high + 0.01).all()
    for column in (
        "open",
        "high",
        "low",
        "close",
        "pre_close",
        "change",
        "pct_chg",
        "vol",
        "amount",
    ):
        assert daily[column].dtype == np.float64, column
    assert daily["trade_date"].str.fullmatch(r"\d{8}").all()


def test_pre_close_is_the_previous_close_unless_an_ex_right_day_came_between(bars):
    later = bars[bars["prev_close"].notna()]
    plain = later[later["adj_factor"] == later["prev_adj"]]
    assert (plain["pre_close"] == plain["prev_close"]).all()
    ex_right = later[later["adj_factor"] > later["prev_adj"]]
    assert len(ex_right) > 100
    assert (ex_right["pre_close"] < ex_right["prev_close"]).all()
    adjusted = ex_right["prev_close"] * ex_right["prev_adj"] / ex_right["adj_factor"]
    tolerance = 0.011 + ex_right["prev_close"] * 2e-3  # adj_factor has 3 decimals
    assert ((ex_right["pre_close"] - adjusted).abs() <= tolerance).all()


def test_adj_factor_jumps_on_ex_days_and_keeps_hfq_prices_continuous(bars, adj, stocks):
    ordered = adj.sort_values(["ts_code", "trade_date"])
    step = ordered.groupby("ts_code")["adj_factor"].diff()
    assert (step.dropna() >= 0).all()
    jumps = (step > 0).groupby(ordered["ts_code"]).sum()
    years = ordered.groupby("ts_code").size() / 243
    assert (jumps <= 2 * years + 1).all()
    old = stocks.loc[stocks["list_date"] <= START, "ts_code"]
    assert (jumps[old] >= 1).mean() > 0.9
    listed_late = stocks.loc[stocks["list_date"] > START, "ts_code"]
    first_factor = ordered.groupby("ts_code")["adj_factor"].first()
    assert (first_factor[listed_late] == 1.0).all()

    ex_right = bars[bars["adj_factor"] > bars["prev_adj"]]
    hfq_move = (
        ex_right["close"] * ex_right["adj_factor"] / (ex_right["prev_close"] * ex_right["prev_adj"])
    )
    day_move = ex_right["close"] / ex_right["pre_close"]
    assert np.allclose(hfq_move, day_move, rtol=2e-3)
    raw_move = ex_right["close"] / ex_right["prev_close"]
    assert raw_move.min() < 0.75  # bonus shares halve or cut the raw price
    assert hfq_move.min() > 0.69  # while hfq never drops beyond a daily limit


def test_daily_basic_agrees_with_daily(daily, basic, bars):
    key_columns = ["ts_code", "trade_date"]
    assert basic[key_columns].equals(daily[key_columns])
    frame = basic.assign(vol=daily["vol"])
    assert frame["close"].equals(daily["close"])
    turnover = frame["vol"] * 100 / (frame["float_share"] * 10000) * 100
    assert np.allclose(frame["turnover_rate"], turnover, atol=1e-4, rtol=0)
    assert np.allclose(
        frame["turnover_rate_f"], frame["vol"] / frame["free_share"], atol=1e-4, rtol=0
    )
    assert np.allclose(frame["total_mv"], frame["close"] * frame["total_share"], atol=1e-3, rtol=0)
    assert np.allclose(frame["circ_mv"], frame["close"] * frame["float_share"], atol=1e-3, rtol=0)
    assert (frame["free_share"] <= frame["float_share"]).all()
    assert (frame["float_share"] <= frame["total_share"]).all()
    # Shares only change on ex-right days (bonus shares).
    ordered = frame.sort_values(["ts_code", "trade_date"])
    share_change = ordered.groupby("ts_code")["total_share"].diff().fillna(0) != 0
    ex_days = keys(bars[bars["adj_factor"] > bars["prev_adj"]])
    changed = keys(ordered[share_change])
    assert changed and changed <= ex_days


def test_daily_basic_values_are_realistic(basic):
    turnover = basic["turnover_rate"]
    assert turnover.min() >= 0.1 and turnover.max() <= 20
    assert 0.5 <= turnover.median() <= 5
    assert 0 < (turnover > 10).mean() < 0.05
    assert 0.7 <= basic["volume_ratio"].median() <= 1.4
    for column in ("pe", "pe_ttm"):
        assert 0.02 < basic[column].isna().mean() < 0.3, column
        assert (basic[column].dropna() > 0).all(), column
        assert 10 < basic[column].median() < 60, column
    for column in ("pb", "ps", "ps_ttm"):
        assert (basic[column] > 0).all(), column
    both = basic.dropna(subset=["dv_ratio", "dv_ttm"])
    assert len(both) > 0.3 * len(basic)
    assert (both["dv_ttm"] >= both["dv_ratio"] - 1e-4).all()  # both rounded to 4 dp
    assert 0.5 < both["dv_ttm"].median() < 5
    assert basic["total_mv"].median() > 1e5  # above 1 billion CNY, in 万元


def test_frames_do_not_depend_on_query_order_or_range(market, daily, adj, basic):
    fresh = SampleMarket(as_of=AS_OF)
    day = "20240517"
    per_day = {
        api: fresh.query(api, trade_date=day) for api in ("daily_basic", "adj_factor", "daily")
    }
    for api, whole in (("daily", daily), ("adj_factor", adj), ("daily_basic", basic)):
        expected = whole[whole["trade_date"] == day].reset_index(drop=True)
        pd.testing.assert_frame_equal(per_day[api], expected)
    codes = "300001.SZ," + ",".join(daily["ts_code"].drop_duplicates().iloc[[3, 40]])
    ranged = fresh.query("daily", ts_code=codes, start_date="20230101", end_date="20231231")
    wanted = daily["ts_code"].isin(codes.split(",")) & daily["trade_date"].between(
        "20230101", "20231231"
    )
    pd.testing.assert_frame_equal(ranged, daily[wanted].reset_index(drop=True))
    assert ranged["trade_date"].is_monotonic_decreasing


def test_an_earlier_as_of_cuts_the_history_without_changing_it(market, stocks, daily):
    early = sample_market(as_of=EARLY_AS_OF)
    day = "20210315"
    for api in ("daily", "adj_factor", "daily_basic"):
        pd.testing.assert_frame_equal(
            early.query(api, trade_date=day), market.query(api, trade_date=day)
        )
    assert early.query("daily", trade_date="20220701").empty
    assert early.query("daily")["trade_date"].max() == EARLY_AS_OF
    early_stocks = early.query("stock_basic", list_status="L,D,P")
    assert set(early_stocks["ts_code"]) == set(
        stocks.loc[stocks["list_date"] <= EARLY_AS_OF, "ts_code"]
    )
    delisted_later = stocks[
        (stocks["delist_date"] > EARLY_AS_OF) & (stocks["list_date"] <= EARLY_AS_OF)
    ]["ts_code"]
    assert len(delisted_later) > 0
    assert (early_stocks.set_index("ts_code").loc[delisted_later, "list_status"] == "L").all()
    future = market.query("daily", trade_date="20261130")
    assert future.empty and tuple(future.columns) == API_FIELDS["daily"]


def test_a_fresh_process_generates_the_same_market():
    config = {"seed": 3, "n_stocks": 60, "start_date": "20240102", "as_of": AS_OF}
    script = (
        "import pandas as pd\n"
        "from zquant_pipelines.sample_market import SampleMarket\n"
        f"m = SampleMarket(**{config!r})\n"
        "for api in ('daily', 'adj_factor', 'daily_basic'):\n"
        "    print(int(pd.util.hash_pandas_object(m.query(api)).sum()))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    market = sample_market(**config)
    expected = [
        int(pd.util.hash_pandas_object(market.query(api)).sum())
        for api in ("daily", "adj_factor", "daily_basic")
    ]
    assert [int(line) for line in child.stdout.split()] == expected


def test_another_seed_gives_another_market(market):
    other = sample_market(seed=8, as_of=AS_OF)
    assert not other.query("stock_basic")["ts_code"].equals(market.query("stock_basic")["ts_code"])


@pytest.mark.parametrize(
    ("api_name", "params", "named"),
    [
        ("weekly", {}, "weekly"),
        ("daily", {"trade_dat": "20261127"}, "trade_dat"),
        ("daily", {"trade_date": "2026-11-27"}, "trade_date"),
        ("daily", {"trade_date": "20261127", "start_date": "20261101"}, "trade_date"),
        ("daily", {"start_date": "20261127", "end_date": "20261101"}, "start_date"),
        ("adj_factor", {"ts_code": "600000"}, "600000"),
        ("daily_basic", {"end_date": "20261340"}, "end_date"),
        ("stock_basic", {"list_status": "X"}, "list_status"),
        ("stock_basic", {"exchange": "NYSE"}, "exchange"),
        ("trade_cal", {"exchange": "HKEX"}, "exchange"),
        ("trade_cal", {"is_open": "yes"}, "is_open"),
    ],
)
def test_bad_queries_name_the_bad_parameter(market, api_name, params, named):
    with pytest.raises(ValueError, match=named):
        market.query(api_name, **params)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"seed": -1}, "seed"),
        ({"n_stocks": 5}, "n_stocks"),
        ({"n_stocks": 100_000}, "n_stocks"),
        ({"start_date": "2019-01-02"}, "start_date"),
        ({"start_date": "20180102"}, "start_date"),
        ({"as_of": "tomorrow"}, "as_of"),
    ],
)
def test_bad_configuration_names_the_field(config, named):
    with pytest.raises(ValueError, match=named):
        SampleMarket(**config)


def test_unknown_codes_and_closed_days_give_empty_frames(market):
    assert market.query("daily", ts_code="699999.SH").empty
    weekend = market.query("daily_basic", trade_date="20261128")
    assert weekend.empty and tuple(weekend.columns) == API_FIELDS["daily_basic"]
    assert market.query("adj_factor", trade_date="20261001").empty


def test_a_market_is_built_once_per_configuration(market):
    assert sample_market(as_of=AS_OF) is market
    assert sample_market(as_of=dt.date(2026, 11, 27)) is market
    assert market.last_trade_date == dt.date(2026, 11, 27)
