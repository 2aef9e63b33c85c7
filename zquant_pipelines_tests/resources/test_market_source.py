"""The MarketSource interface: a source must implement query."""

import dagster as dg
import pandas as pd
import pytest

from zquant_pipelines.resources.market_source import MarketSource


class SourceWithoutQuery(MarketSource):
    label: str = "forgot query"


class OneRowSource(MarketSource):
    def query(self, api_name: str, **params) -> pd.DataFrame:
        return pd.DataFrame({"api_name": [api_name], **{k: [v] for k, v in params.items()}})


def test_a_source_without_query_cannot_be_instantiated():
    with pytest.raises(TypeError, match="abstract method.*query"):
        SourceWithoutQuery()


def test_the_interface_itself_cannot_be_instantiated():
    with pytest.raises(TypeError, match="abstract method.*query"):
        MarketSource()


def test_a_source_with_query_serves_as_a_resource():
    with dg.build_resources({"market_source": OneRowSource()}) as resources:
        frame = resources.market_source.query("daily", trade_date="20240603")

    assert frame.to_dict("records") == [{"api_name": "daily", "trade_date": "20240603"}]
