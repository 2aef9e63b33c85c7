"""The report-period assets materialized through Dagster with a real instance, the tushare
client talking HTTP to the wire server over the sample market: partitions are quarter ends,
a partition's run stores that period's versions and reports the rows added and changed,
the vip refusal falls back per stock, and the revisions schedule asks for the last four
periods."""

import datetime as dt

import dagster as dg
import pytest

from zquant_pipelines.assets.financials import (
    FINANCIAL_STATEMENTS_JOB_NAME,
    build_financial_definitions,
    financial_revisions_schedule,
    report_period_partitions,
)
from zquant_pipelines.assets.market import stock_basic
from zquant_pipelines.constants import ENV_REVISED_PERIODS, REPORT_PERIOD_APIS
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.sync.financials import rechecked_periods
from zquant_pipelines.sync.market import sync_stock_basic
from zquant_pipelines_tests.support.wire_clients import wire_resources

PERIOD = "2026-06-30"


def run_period(server, tmp_path, instance, period: str = PERIOD) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions.merge(
        build_financial_definitions(),
        dg.Definitions(assets=[stock_basic], resources=wire_resources(server, tmp_path)),
    )
    job = defs.resolve_job_def(FINANCIAL_STATEMENTS_JOB_NAME)
    return job.execute_in_process(instance=instance, partition_key=period, raise_on_error=False)


def figures(result: dg.ExecuteInProcessResult, api_name: str) -> dict:
    (materialization,) = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == dg.AssetKey(api_name)
    ]
    return {name: value.value for name, value in materialization.metadata.items()}


def test_partitions_are_quarter_ends_up_to_the_last_one_passed():
    keys = report_period_partitions.get_partition_keys(
        current_time=dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)
    )
    assert keys[0] == "2020-03-31"
    assert keys[-4:] == ["2025-12-31", "2026-03-31", "2026-06-30", "2026-09-30"]


def test_a_partition_run_stores_the_periods_versions_and_reports_what_it_added(
    tushare_server_factory, tmp_path, instance
):
    early = tushare_server_factory(SampleMarketSource(as_of="20260905"))
    late = tushare_server_factory(SampleMarketSource(as_of="20261130"))
    resources = wire_resources(late, tmp_path)
    sync_stock_basic(resources["market_source"], resources["warehouse"])

    first = run_period(early, tmp_path, instance)
    again = run_period(early, tmp_path, instance)
    later = run_period(late, tmp_path, instance)

    warehouse = resources["warehouse"]
    for api_name in REPORT_PERIOD_APIS:
        served = late.backing.query(f"{api_name}_vip", period="20260630")
        stored = warehouse.count_rows(api_name)
        assert figures(first, api_name)["rows_added"] > 0
        assert (
            figures(again, api_name)["rows_added"],
            figures(again, api_name)["rows_changed"],
        ) == (0, 0)
        assert (
            figures(later, api_name)["rows_added"]
            == stored - figures(first, api_name)["rows_added"]
        )
        assert stored > len(served)  # the early versions stay beside the late ones
        assert figures(later, api_name)["mode"] == "whole_market"
    checks = later.get_asset_check_evaluations()
    assert len(checks) == 2 * len(REPORT_PERIOD_APIS) and all(c.passed for c in checks)


def test_a_refused_vip_endpoint_falls_back_per_stock_within_the_run(
    tushare_server_factory, tmp_path, instance
):
    server = tushare_server_factory(SampleMarketSource(as_of="20261130"))
    resources = wire_resources(server, tmp_path)
    sync_stock_basic(resources["market_source"], resources["warehouse"])
    server.deny("cashflow_vip")

    result = run_period(server, tmp_path, instance)

    assert result.success
    assert figures(result, "cashflow")["mode"] == "per_stock"
    assert figures(result, "cashflow")["stocks_asked"] == len(server.calls_to("cashflow"))
    assert figures(result, "income")["mode"] == "whole_market"


def test_the_revisions_schedule_asks_for_the_last_four_periods(instance):
    tick = dt.datetime(2026, 12, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    requests = financial_revisions_schedule(context)
    assert [request.partition_key for request in requests] == [
        "2025-12-31",
        "2026-03-31",
        "2026-06-30",
        "2026-09-30",
    ]
    assert len({request.run_key for request in requests}) == 4


def test_the_revisions_schedule_asks_for_as_many_periods_as_zquant_revised_periods(
    instance, monkeypatch
):
    tick = dt.datetime(2026, 12, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    monkeypatch.setenv(ENV_REVISED_PERIODS, "2")
    keys = [request.partition_key for request in financial_revisions_schedule(context)]
    assert keys == ["2026-06-30", "2026-09-30"]


@pytest.mark.parametrize("value", ["0", "13", "four", "-1", "2.5"])
def test_a_bad_zquant_revised_periods_names_the_variable_and_the_value(value):
    with pytest.raises(ValueError) as raised:
        rechecked_periods(value)
    assert ENV_REVISED_PERIODS in str(raised.value)
    assert repr(value) in str(raised.value)
