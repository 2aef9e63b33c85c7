"""SampleMarketSource as a Dagster resource and as a tushare backend over the wire.

The market's realism rules are tested in zquant_pipelines_tests/test_sample_market.py.
"""

import dagster as dg
import pandas as pd
import pytest
import tushare

from zquant_pipelines.constants import API_FIELDS
from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.sample_market import market_today
from zquant_pipelines_tests.support.tushare_wire_server import DEFAULT_TOKEN, TushareWireServer

AS_OF = "20261127"
DAY_PARAMS = {
    "stock_basic": {"list_status": "L,D,P"},
    "trade_cal": {"exchange": "SZSE", "start_date": "20261001", "end_date": "20261130"},
    "daily": {"trade_date": AS_OF},
    "adj_factor": {"trade_date": AS_OF},
    "daily_basic": {"trade_date": AS_OF},
}


@pytest.fixture(scope="module")
def source() -> SampleMarketSource:
    return SampleMarketSource(as_of=AS_OF)


def test_an_asset_gets_the_configured_market_as_its_market_source(source):
    @dg.asset
    def market_snapshot(market_source: MarketSource) -> dg.MaterializeResult:
        stocks = market_source.query("stock_basic", list_status="L,D,P")
        bars = market_source.query("daily", start_date="20261101")
        return dg.MaterializeResult(
            metadata={
                "stocks": len(stocks),
                "newest_bar": bars["trade_date"].max(),
                "columns": ",".join(bars.columns),
            }
        )

    result = dg.materialize(
        [market_snapshot],
        resources={"market_source": SampleMarketSource(seed=8, as_of=AS_OF)},
    )

    assert result.success
    metadata = result.asset_materializations_for_node("market_snapshot")[0].metadata
    assert 250 <= metadata["stocks"].value <= 320
    assert metadata["newest_bar"].value == AS_OF
    assert metadata["columns"].value == ",".join(API_FIELDS["daily"])


def test_the_tushare_sdk_reads_the_same_frames_over_the_wire(source):
    with TushareWireServer(source) as server:
        api = tushare.pro_api(DEFAULT_TOKEN)
        api._DataApi__http_url = server.url
        for api_name, params in DAY_PARAMS.items():
            fields = ",".join(API_FIELDS[api_name])
            over_the_wire = api.query(api_name, fields=fields, **params)
            direct = source.query(api_name, **params)
            assert len(direct) > 0, api_name
            pd.testing.assert_frame_equal(over_the_wire, direct, check_dtype=False)


def test_configurations_share_one_market_per_process(source):
    assert SampleMarketSource(as_of=AS_OF).market() is source.market()
    other_seed = SampleMarketSource(seed=8, as_of=AS_OF)
    assert not other_seed.query("daily", trade_date=AS_OF).equals(
        source.query("daily", trade_date=AS_OF)
    )


def test_unset_as_of_serves_bars_through_the_last_open_day_up_to_today():
    today = f"{market_today():%Y%m%d}"
    source = SampleMarketSource()
    calendar = source.query("trade_cal", end_date=today, is_open=1)
    last_open_day = calendar["cal_date"].iloc[0]

    bars = source.query("daily", start_date=calendar["cal_date"].iloc[5])

    assert bars["trade_date"].max() == last_open_day
    assert source.market().as_of == market_today()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"n_stocks": 5}, "n_stocks"),
        ({"seed": -3}, "seed"),
        ({"start_date": "2019-01-02"}, "start_date"),
        ({"as_of": "20261340"}, "as_of"),
    ],
)
def test_bad_configuration_fails_naming_the_field(config, named):
    with pytest.raises(ValueError, match=named):
        SampleMarketSource(**config).query("trade_cal")
