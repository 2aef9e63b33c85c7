"""What README says about the sample market, the shipped catalog and the asset pages, checked
against them: the stock count, the codes of the examples and the shipped repair task, the
UI's wording, and why most partitions show as missing."""

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from zquant_pipelines.assets.factors import factor_daily
from zquant_pipelines.assets.market import trading_day_assets
from zquant_pipelines.dates import market_today
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.tasks.action_params import parse_action_params
from zquant_pipelines.tasks.catalog import load_catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
README = (REPO_ROOT / "README.md").read_text()
REPAIR_TASK = "repair_daily_bars"


@pytest.fixture(scope="module")
def market() -> SampleMarketSource:
    return SampleMarketSource()


def stock_list(market: SampleMarketSource) -> pd.DataFrame:
    """stock_basic as the sync reads it: listed, delisted and paused stocks."""
    return pd.concat(market.query("stock_basic", list_status=status) for status in "LDP")


def test_readme_stock_count_is_the_sample_markets(market):
    [claimed] = re.findall(r"sample market \((\d+) stocks", " ".join(README.split()))
    assert int(claimed) == market.n_stocks
    # Not all of them have listed yet: README says stock_basic holds those listed by today.
    listed = stock_list(market)
    assert (listed["list_date"] <= f"{market_today():%Y%m%d}").all()
    assert "`stock_basic` holds those listed by today" in " ".join(README.split())


def bars_of(market, code: str, start: str, end: str) -> int:
    return len(market.query("daily", ts_code=code, start_date=start, end_date=end))


def test_the_shipped_repair_task_names_stocks_the_sample_market_has(market):
    task = load_catalog(REPO_ROOT / "tasks.yaml").tasks[REPAIR_TASK]
    config = dict(task.config)
    params = parse_action_params(config.pop("task_action"), config)
    known = set(stock_list(market)["ts_code"])
    assert set(params.codelist) <= known, sorted(set(params.codelist) - known)
    for code in params.codelist:
        assert bars_of(market, code, config["start_date"], config["end_date"]) > 0, code


def test_readme_sync_daily_example_names_stocks_the_sample_market_has(market):
    [line] = [line for line in README.splitlines() if line.startswith("zquant sync-daily ")]
    argv = shlex.split(line)
    option = {name: argv[argv.index(name) + 1] for name in argv if name.startswith("--")}
    params = parse_action_params(
        "sync_daily_data",
        {
            "codelist": option["--codelist"],
            "start_date": option["--start-date"],
            "end_date": option["--end-date"],
        },
    )
    known = set(stock_list(market)["ts_code"])
    assert set(params.codelist) <= known, sorted(set(params.codelist) - known)
    for code in params.codelist:
        assert bars_of(market, code, option["--start-date"], option["--end-date"]) > 0, code


def test_readme_names_the_ui_as_it_is():
    # Dagster's UI has no Plots tab: the asset's metadata has a Table/Plots toggle.
    assert "-> Plots" not in README
    assert "Table/Plots toggle" in README


def test_partitioned_assets_say_why_most_partitions_are_missing():
    for asset in (*trading_day_assets, factor_daily):
        [description] = asset.descriptions_by_key.values()
        assert "ZQUANT_PARTITIONS_START" in description, asset.key
        assert "dagster job launch" in description, asset.key
    flowing = " ".join(README.split())
    assert "most of them show as missing on the asset pages" in flowing
    assert "prints the command that backfills" in flowing
