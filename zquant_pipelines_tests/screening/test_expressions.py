"""The condition language: each condition's mask equals an independent pandas filter of the
same frame (written by hand, NULL rows excluded as SQL does), and bad conditions are refused
with the column and the position named."""

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.screening.expressions import ConditionError, compile_condition, evaluate
from zquant_pipelines.screening.screens import screen_catalog

ROWS = 400


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Stocks with numbers, text and dates, a tenth of each column NULL."""
    rng = np.random.default_rng(7)
    names = np.array(["平安银行", "*ST嘉明", "ST长城", "万科A", "中国平安"])

    def holes(values):
        values = pd.Series(values)
        return values.mask(rng.random(ROWS) < 0.1)

    frame = pd.DataFrame(
        {
            "daily_basic.turnover_rate": holes(rng.gamma(2.0, 2.0, ROWS)),
            "daily_basic.total_mv": holes(rng.uniform(1e4, 5e6, ROWS)),
            "daily_basic.pe": holes(rng.normal(20, 30, ROWS)),
            "daily_basic.close": holes(rng.uniform(1, 50, ROWS)),
            "daily.close": holes(rng.uniform(1, 50, ROWS)),
            "daily.pre_close": holes(rng.uniform(1, 50, ROWS)),
            "factor_daily.turnover_rate_ma_20": holes(rng.gamma(2.0, 2.0, ROWS)),
            "stock_basic.name": holes(rng.choice(names, ROWS)).astype(object),
            "stock_basic.market": holes(rng.choice(["主板", "创业板", "科创板"], ROWS)),
            "stock_basic.list_date": pd.to_datetime(
                holes(
                    pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 9000, ROWS), "D")
                )
            ),
        }
    )
    frame["stock_basic.name"] = frame["stock_basic.name"].where(
        frame["stock_basic.name"].notna(), None
    )
    # daily_basic repeats daily's close: equal on every other row here.
    frame.loc[::2, "daily.close"] = frame.loc[::2, "daily_basic.close"]
    return frame


# (condition, the same filter written with pandas, independently of the evaluator)
CASES = [
    ("turnover_rate > 5", lambda f: f["daily_basic.turnover_rate"] > 5),
    ("turnover_rate >= 5.5", lambda f: f["daily_basic.turnover_rate"] >= 5.5),
    ("pe < -10", lambda f: f["daily_basic.pe"] < -10),
    (
        "pe <> 0 and pe != 1",
        lambda f: (f["daily_basic.pe"] != 0)
        & (f["daily_basic.pe"] != 1)
        & f["daily_basic.pe"].notna(),
    ),
    (
        "turnover_rate_ma_20 > 5 and total_mv between 500000 and 2000000",
        lambda f: (f["factor_daily.turnover_rate_ma_20"] > 5)
        & (f["daily_basic.total_mv"] >= 500000)
        & (f["daily_basic.total_mv"] <= 2000000),
    ),
    (
        "total_mv not between 500000 and 2000000",
        lambda f: f["daily_basic.total_mv"].notna()
        & ~f["daily_basic.total_mv"].between(500000, 2000000),
    ),
    (
        "market in ('主板', '创业板')",
        lambda f: f["stock_basic.market"].isin(["主板", "创业板"]),
    ),
    (
        "market not in ('主板')",
        lambda f: f["stock_basic.market"].notna() & (f["stock_basic.market"] != "主板"),
    ),
    (
        "name like '%ST%'",
        lambda f: f["stock_basic.name"].fillna("").str.contains("ST", regex=False),
    ),
    (
        "NOT name LIKE '%ST%'",
        lambda f: f["stock_basic.name"].notna()
        & ~f["stock_basic.name"].fillna("").str.contains("ST", regex=False),
    ),
    ("name like '万科_'", lambda f: f["stock_basic.name"] == "万科A"),
    ("pe is null", lambda f: f["daily_basic.pe"].isna()),
    (
        "pe is not null or turnover_rate > 8",
        lambda f: f["daily_basic.pe"].notna() | (f["daily_basic.turnover_rate"] > 8),
    ),
    ("daily.close > daily.pre_close", lambda f: f["daily.close"] > f["daily.pre_close"]),
    ("daily_basic.close = daily.close", lambda f: f["daily_basic.close"] == f["daily.close"]),
    ("5 < turnover_rate", lambda f: f["daily_basic.turnover_rate"] > 5),
    ("list_date < '2010-01-01'", lambda f: f["stock_basic.list_date"] < pd.Timestamp("2010-01-01")),
    ("list_date >= '20150601'", lambda f: f["stock_basic.list_date"] >= pd.Timestamp("2015-06-01")),
    (
        "not (turnover_rate > 5 or pe < 0)",
        lambda f: (f["daily_basic.turnover_rate"] <= 5) & (f["daily_basic.pe"] >= 0),
    ),
    (
        "turnover_rate > 5 or pe < 0 and total_mv > 1000000",
        lambda f: (f["daily_basic.turnover_rate"] > 5)
        | ((f["daily_basic.pe"] < 0) & (f["daily_basic.total_mv"] > 1000000)),
    ),
    (
        "(turnover_rate > 5 or pe < 0) and total_mv > 1000000",
        lambda f: ((f["daily_basic.turnover_rate"] > 5) | (f["daily_basic.pe"] < 0))
        & (f["daily_basic.total_mv"] > 1000000),
    ),
    (
        "not not turnover_rate > 5",
        lambda f: f["daily_basic.turnover_rate"] > 5,
    ),
]


@pytest.mark.parametrize(("condition", "oracle"), CASES, ids=[case[0] for case in CASES])
def test_condition_selects_what_pandas_selects(frame, condition, oracle):
    tree = compile_condition(condition, screen_catalog())

    selected = evaluate(tree, frame)
    expected = oracle(frame).fillna(False).astype(bool)

    assert 0 < expected.sum() < len(frame), "the case must split the frame"
    pd.testing.assert_series_equal(selected, expected, check_names=False)


@pytest.mark.parametrize(
    ("condition", "message", "column"),
    [
        ("total_mvv > 5", "unknown column 'total_mvv' (did you mean total_mv", "total_mvv"),
        (
            "close > 3",
            "column 'close' is in daily_basic, daily: write daily_basic.close or daily.close",
            "close",
        ),
        ("nope.pe > 1", "unknown table 'nope'", "nope.pe"),
        ("daily.pe > 1", "unknown column 'pe' in table 'daily'", "daily.pe"),
        ("name > 5", "type mismatch: name is a text column, compared with the number 5", "name"),
        (
            "pe = 'high'",
            "type mismatch: pe is a number column, compared with the text 'high'",
            "pe",
        ),
        ("pe > name", "type mismatch: pe is a number, name is a text", "name"),
        ("pe like '%1%'", "type mismatch: like needs a text column, pe is a number", "pe"),
        (
            "list_date > 'soon'",
            "type mismatch: list_date is a date, 'soon' is not a date",
            "list_date",
        ),
        (
            "pe between 1 and",
            "expected a column, a number or a quoted text at position 17, found the end",
            None,
        ),
        ("pe >> 1", "expected a column, a number or a quoted text at position 5, found '>'", None),
        ("pe ~ 1", "unexpected character '~' at position 4", None),
        ("pe < 5 pb", "unexpected 'pb' at position 8 (join conditions with and / or)", None),
        ("(pe < 5", "expected ')' at position 8", None),
        ("pe", "expected an operator", None),
        ("name = 'open", "a quoted text is not closed at position 8", None),
        ("1 < 2", "< compares two constants: name a column", None),
        ("pe in (1, pb)", "an in list holds constants only", "pe"),
        ("", "is empty", None),
        ("(" * 51 + "pe > 1" + ")" * 51, "nested deeper than 50 levels", None),
        ("not " * 60 + "pe > 1", "nested deeper than 50 levels", None),
        ("pe > 1 and " * 300 + "pe > 1", "characters long, over 2,000", None),
    ],
)
def test_bad_condition_is_refused_naming_what_is_wrong(condition, message, column):
    with pytest.raises(ConditionError) as caught:
        compile_condition(condition, screen_catalog())

    assert message in str(caught.value)
    assert caught.value.column == column


def test_python_is_never_evaluated():
    with pytest.raises(ConditionError, match="unexpected character"):
        compile_condition("__import__('os').system('true') > 1", screen_catalog())


def test_a_market_field_that_factor_daily_copies_reads_the_market_table():
    # zquant's turnover_rate factor (factor_daily) copies daily_basic.turnover_rate.
    bare = compile_condition("turnover_rate > 5", screen_catalog())
    qualified = compile_condition("factor_daily.turnover_rate > 5", screen_catalog())

    assert bare.left.qualified == "daily_basic.turnover_rate"
    assert qualified.left.qualified == "factor_daily.turnover_rate"
