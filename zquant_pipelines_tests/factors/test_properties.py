"""Properties of compute_factor_daily: a stock's factors depend on its own rows only."""

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from zquant_pipelines.factors.library import compute_factor_daily
from zquant_pipelines_tests.support.synthetic_market import synthetic_market

markets = st.builds(
    synthetic_market,
    n_stocks=st.integers(1, 6),
    n_days=st.integers(1, 150),
    seed=st.integers(0, 2**32 - 1),
    late_listing_share=st.sampled_from([0.0, 0.5]),
    suspension_rate=st.sampled_from([0.0, 0.05]),
    dividend_rate=st.sampled_from([0.0, 0.05]),
    missing_basic_rate=st.sampled_from([0.0, 0.01]),
)


def shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows in another order, under index labels that are not 0..n-1 either."""
    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.iloc[order].set_axis(order * 7 + 3)


@settings(max_examples=40, deadline=None)
@given(market=markets, seed=st.integers(0, 2**32 - 1))
def test_factors_do_not_depend_on_row_order(market, seed):
    expected = compute_factor_daily(*market)
    frames = [shuffled(frame, seed + i) for i, frame in enumerate(market)]
    pd.testing.assert_frame_equal(compute_factor_daily(*frames), expected, check_exact=True)


@settings(max_examples=40, deadline=None)
@given(
    market=markets,
    others=st.integers(1, 5),
    days=st.integers(1, 150),
    shift=st.integers(-60, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_factors_do_not_depend_on_other_stocks(market, others, days, shift, seed):
    expected = compute_factor_daily(*market)
    # Other stocks, on a calendar that may start earlier or later and add new days.
    start = dt.date(2024, 1, 2) + dt.timedelta(days=shift)
    other = synthetic_market(others, days, seed, first_code=900_000, start=start)
    combined = [pd.concat(pair, ignore_index=True) for pair in zip(market, other, strict=True)]
    result = compute_factor_daily(*combined)
    own = result[result["ts_code"].isin(set(market[0]["ts_code"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(own, expected, check_exact=True)
    # And the other stocks get what they would get alone.
    theirs = result[~result["ts_code"].isin(set(market[0]["ts_code"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(theirs, compute_factor_daily(*other), check_exact=True)
