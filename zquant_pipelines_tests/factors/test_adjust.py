"""adjust_prices: hfq and qfq on a hand-written panel with ex-dividend days."""

import datetime as dt
import math

import pandas as pd
import pytest

from zquant_pipelines.factors.adjust import PRICE_COLUMNS, adjust_prices

D = [dt.date(2025, 3, day) for day in (3, 4, 5, 6, 7)]
DIVIDEND, SUSPENDED, DELISTED = "600000.SH", "000001.SZ", "000003.SZ"

# (ts_code, day, open, high, low, close, pre_close): DIVIDEND goes ex on D[2] (factor 1.0 ->
# 1.25): its raw close falls from 10.20 to 8.20 while the stock rose 0.5%; pre_close on D[2]
# is the ex-rights price 10.20 / 1.25 = 8.16. SUSPENDED does not trade on D[4] but goes ex
# that day (2.0 -> 2.2); DELISTED's last day is D[1].
DAILY_ROWS = [
    (DIVIDEND, 0, 9.95, 10.05, 9.90, 10.00, 9.90),
    (DIVIDEND, 1, 10.00, 10.30, 10.00, 10.20, 10.00),
    (DIVIDEND, 2, 8.16, 8.25, 8.10, 8.20, 8.16),
    (DIVIDEND, 3, 8.20, 8.35, 8.18, 8.30, 8.20),
    (DIVIDEND, 4, 8.30, 8.45, 8.28, 8.40, 8.30),
    (SUSPENDED, 0, 5.00, 5.10, 4.95, 5.05, 5.00),
    (SUSPENDED, 2, 5.05, 5.10, 5.00, 5.08, 5.05),
    (SUSPENDED, 3, 5.08, 5.20, 5.06, 5.15, 5.08),
    (DELISTED, 0, 3.00, 3.05, 2.95, 3.02, 3.00),
    (DELISTED, 1, 3.02, 3.03, 2.90, 2.91, 3.02),
]
FACTORS = {
    DIVIDEND: [1.0, 1.0, 1.25, 1.25, 1.25],
    SUSPENDED: [2.0, 2.0, 2.0, 2.0, 2.2],
    DELISTED: [4.0, 4.0, None, None, None],
}


def panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close"]
    rows = [(code, D[i], *prices) for code, i, *prices in DAILY_ROWS]
    daily = pd.DataFrame(rows, columns=columns)
    daily["change"] = (daily["close"] - daily["pre_close"]).round(2)
    daily["vol"] = 1000.0
    daily["amount"] = 5000.0
    adj = pd.DataFrame(
        [
            (code, D[i], factor)
            for code, factors in FACTORS.items()
            for i, factor in enumerate(factors)
            if factor is not None
        ],
        columns=["ts_code", "trade_date", "adj_factor"],
    )
    # Rows in no particular order, under labels that are not 0..n-1.
    return daily.iloc[::-1].set_axis(range(100, 100 + len(daily))), adj


def price(frame: pd.DataFrame, code: str, day: int, column: str = "close") -> float:
    rows = frame[(frame["ts_code"] == code) & (frame["trade_date"] == D[day])]
    assert len(rows) == 1
    return float(rows[column].iloc[0])


def test_hfq_is_price_times_the_days_factor():
    daily, adj = panel()
    hfq = adjust_prices(daily, adj, "hfq")
    for code, i, *_ in DAILY_ROWS:
        for column in PRICE_COLUMNS:
            assert price(hfq, code, i, column) == pytest.approx(
                price(daily, code, i, column) * FACTORS[code][i]
            )
    # The ex-date is a 0.5% rise in hfq, not the 20% fall of the raw close.
    assert price(daily, DIVIDEND, 2) / price(daily, DIVIDEND, 1) - 1 < -0.19
    assert price(hfq, DIVIDEND, 2) / price(hfq, DIVIDEND, 1) - 1 == pytest.approx(0.004902, 1e-3)
    assert price(hfq, DIVIDEND, 2, "pre_close") == pytest.approx(price(hfq, DIVIDEND, 1))


def test_qfq_anchored_at_the_latest_day_keeps_todays_prices():
    daily, adj = panel()
    qfq = adjust_prices(daily, adj, "qfq")
    for i in (2, 3, 4):
        assert price(qfq, DIVIDEND, i) == pytest.approx(price(daily, DIVIDEND, i))
    for i in (0, 1):
        for column in PRICE_COLUMNS:
            assert price(qfq, DIVIDEND, i, column) == pytest.approx(
                price(daily, DIVIDEND, i, column) / 1.25
            )
    assert price(qfq, DIVIDEND, 2, "pre_close") == pytest.approx(price(qfq, DIVIDEND, 1))
    # SUSPENDED's anchor factor is its factor on D[4] (an adj_factor row, no daily row).
    assert price(qfq, SUSPENDED, 3) == pytest.approx(5.15 * 2.0 / 2.2)
    # DELISTED has no factor on D[4]: its last one (D[1]) is the anchor.
    assert price(qfq, DELISTED, 1) == pytest.approx(2.91)


def test_qfq_anchored_at_an_earlier_day():
    daily, adj = panel()
    qfq = adjust_prices(daily, adj, "qfq", anchor_date=D[1])
    assert price(qfq, DIVIDEND, 0) == pytest.approx(10.00)
    assert price(qfq, DIVIDEND, 3) == pytest.approx(8.30 * 1.25)
    assert price(qfq, SUSPENDED, 3) == pytest.approx(5.15)
    # As the anchor moves past an ex-date the whole earlier history rescales.
    latest = adjust_prices(daily, adj, "qfq")
    assert price(latest, DIVIDEND, 0) != pytest.approx(price(qfq, DIVIDEND, 0))


def test_other_columns_rows_and_index_are_kept():
    daily, adj = panel()
    for how in ("hfq", "qfq"):
        adjusted = adjust_prices(daily, adj, how)
        assert list(adjusted.index) == list(daily.index)
        assert list(adjusted.columns) == list(daily.columns)
        for column in ("ts_code", "trade_date", "vol", "amount"):
            assert adjusted[column].tolist() == daily[column].tolist()


def test_a_row_without_a_factor_has_no_adjusted_price():
    daily, adj = panel()
    missing = adj[~((adj["ts_code"] == DIVIDEND) & (adj["trade_date"] == D[3]))]
    hfq = adjust_prices(daily, missing, "hfq")
    assert math.isnan(price(hfq, DIVIDEND, 3))
    assert price(hfq, DIVIDEND, 4) == pytest.approx(8.40 * 1.25)


def test_a_stock_without_a_factor_at_the_anchor_has_no_qfq_price():
    daily, adj = panel()
    qfq = adjust_prices(daily, adj, "qfq", anchor_date=dt.date(2025, 3, 1))
    assert qfq["close"].isna().all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"how": "forward"}, r"how must be one of \('hfq', 'qfq'\), got 'forward'"),
        ({"how": "qfq", "anchor_date": "last friday"}, "anchor_date 'last friday' is not a date"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    daily, adj = panel()
    with pytest.raises(ValueError, match=message):
        adjust_prices(daily, adj, **kwargs)
