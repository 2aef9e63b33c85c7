"""The market and factor assets materialized through Dagster with a real instance, the
tushare client talking HTTP to the wire server over the sample market."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RESUME_RETRY_TAG, ROOT_RUN_ID_TAG

from zquant_pipelines.assets.definitions import build_asset_definitions
from zquant_pipelines.assets.market import market_assets
from zquant_pipelines.assets.schedules import CATCH_UP_PARTITIONS
from zquant_pipelines.constants import (
    API_FIELDS,
    DATASETS,
    TAG_PROGRESS_PREFIX,
    TRADING_DAY_APIS,
)
from zquant_pipelines.history.progress import StepProgress, progress_tag
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.sync.market import to_warehouse_frame
from zquant_pipelines_tests.support.wire_clients import wire_resources

AS_OF = "20261127"
OPEN_DAY = "2026-11-27"  # a Friday
HOLIDAY = "2026-10-05"  # a Monday inside the National Day closure


@pytest.fixture
def backing():
    return SampleMarketSource(as_of=AS_OF)


@pytest.fixture
def server(backing, tushare_server_factory):
    return tushare_server_factory(backing)


@pytest.fixture
def resources(server, tmp_path):
    return wire_resources(server, tmp_path)


@pytest.fixture
def defs(resources):
    return dg.Definitions.merge(build_asset_definitions(), dg.Definitions(resources=resources))


def run_job(
    defs,
    instance,
    start: str,
    end: str | None = None,
    tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("market_data_job")
    if end is None:
        return job.execute_in_process(instance=instance, partition_key=start, raise_on_error=False)
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
        tags={
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
            **(tags or {}),
        },
    )


def test_partition_materializes_exactly_what_was_served(defs, instance, server, backing, resources):
    result = run_job(defs, instance, OPEN_DAY)
    assert result.success
    warehouse = resources["warehouse"]
    day = dt.date(2026, 11, 27)
    for api_name in TRADING_DAY_APIS:
        expected = to_warehouse_frame(api_name, backing.query(api_name, trade_date="20261127"))
        expected = expected.sort_values("ts_code").reset_index(drop=True)
        stored = warehouse.read_frame(
            f"SELECT * FROM {api_name} WHERE trade_date = :day ORDER BY ts_code", {"day": day}
        ).loc[:, list(API_FIELDS[api_name])]
        pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
        assert len(server.calls_to(api_name)) == 1  # one call per API for the day
        assert OPEN_DAY in instance.get_materialized_partitions(dg.AssetKey(api_name))
    assert warehouse.count_rows("factor_daily", trade_date=day) == warehouse.count_rows(
        "daily", trade_date=day
    )
    evaluations = result.get_asset_check_evaluations()
    assert {(e.asset_key.path[0], e.check_name) for e in evaluations} >= {
        *(
            (api_name, check)
            for api_name in TRADING_DAY_APIS
            for check in DATASETS[api_name].checks
        ),
        ("factor_daily", "no_duplicate_keys"),
    }
    assert ("stk_factor", "ohlc_sanity") in {
        (e.asset_key.path[0], e.check_name) for e in evaluations
    }
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]


def test_holiday_partition_costs_no_call(defs, instance, server, resources):
    result = run_job(defs, instance, HOLIDAY)
    assert result.success
    for api_name in TRADING_DAY_APIS:
        assert server.calls_to(api_name) == []
        assert HOLIDAY in instance.get_materialized_partitions(dg.AssetKey(api_name))
    assert resources["warehouse"].count_rows("daily") == 0


def test_partition_range_is_one_run(defs, instance, server):
    result = run_job(defs, instance, "2026-11-16", "2026-11-27")
    assert result.success
    assert len(instance.get_run_records()) == 1
    done = instance.get_materialized_partitions(dg.AssetKey("factor_daily"))
    assert {"2026-11-16", "2026-11-20", "2026-11-27"} <= done
    # Ten open weekdays of the sample market's stocks: one call for their code list.
    (call,) = server.calls_to("daily")
    assert (call.params["start_date"], call.params["end_date"]) == ("20261116", "20261127")


def test_a_ranged_run_resumed_from_failure_fetches_only_the_days_not_written(
    defs, instance, server
):
    """A run of daily and adj_factor over four open days fails on the third day of daily;
    run again with the tags a re-execution from failure carries, daily fetches the days from
    the third on, and adj_factor, which wrote every day in the failed run, nothing."""
    first, last = "2026-11-24", "2026-11-27"
    assets = ["stock_basic", "trade_cal", "daily", "adj_factor"]
    server.short_reply("daily", rows=0, trade_date="20261126")
    failed = run_job(defs, instance, first, last, assets=assets)
    assert not failed.success
    server.clear_faults()
    server.reset_calls()
    # A re-execution starts with its parent's tags (progress tags too) and its lineage.
    parent_tags = instance.get_run_by_id(failed.run_id).tags
    copied = {k: v for k, v in parent_tags.items() if k.startswith(TAG_PROGRESS_PREFIX)}
    assert set(copied) == {progress_tag("daily"), progress_tag("adj_factor")}
    reexecution = {**copied, PARENT_RUN_ID_TAG: failed.run_id, ROOT_RUN_ID_TAG: failed.run_id}
    resume = {**reexecution, RESUME_RETRY_TAG: "true"}
    resumed = run_job(defs, instance, first, last, resume, assets)
    assert resumed.success
    # The two days left, in one code-list call.
    assert [call.asked for call in server.calls_to("daily")] == [("20261126", "20261127")]
    assert server.calls_to("adj_factor") == []
    tags = instance.get_run_by_id(resumed.run_id).tags
    daily = StepProgress.from_tag("daily", tags[progress_tag("daily")])
    assert (daily.run_id, daily.done, daily.total) == (resumed.run_id, 4, 4)
    assert daily.written_through == {"daily": last}
    assert first in instance.get_materialized_partitions(dg.AssetKey("daily"))
    # Re-executing all steps (no resume tag) fetches every day again, copied tags or not.
    server.reset_calls()
    assert run_job(defs, instance, first, last, reexecution, assets).success
    for api_name in ("daily", "adj_factor"):
        assert [call.asked for call in server.calls_to(api_name)] == [("20261124", "20261127")]


def test_rerun_of_a_day_leaves_identical_rows(defs, instance, resources):
    run_job(defs, instance, OPEN_DAY)
    before = {t: resources["warehouse"].read_table(t) for t in (*TRADING_DAY_APIS, "factor_daily")}
    run_job(defs, instance, OPEN_DAY)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(resources["warehouse"].read_table(table), frame)


def test_failed_check_shows_in_the_run(defs, instance, resources):
    run_job(defs, instance, OPEN_DAY)
    warehouse = resources["warehouse"]
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE daily SET low = high + 1 WHERE ts_code = (SELECT MIN(ts_code) FROM daily)"
        )
    from zquant_pipelines.assets.checks import run_checks

    results = {r.check_name: r for r in run_checks("daily", warehouse, [dt.date(2026, 11, 27)])}
    assert not results["ohlc_sanity"].passed
    assert results["ohlc_sanity"].metadata["broken_rows"].value == 1
    assert results["no_duplicate_keys"].passed


def test_after_close_schedule_catches_up_missed_days(defs, instance):
    schedule = defs.resolve_schedule_def("market_data_after_close_schedule")
    assert schedule.cron_schedule == "0 18 * * 1-5"
    assert schedule.execution_timezone == "Asia/Shanghai"
    run_job(defs, instance, "2026-11-23", "2026-11-25")
    tick = dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=tick,
        repository_def=defs.get_repository_def(),
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    keys = sorted(r.partition_key for r in requests)
    assert "2026-11-26" in keys and "2026-11-27" in keys
    assert not {"2026-11-23", "2026-11-24", "2026-11-25"} & set(keys)
    assert len(keys) == CATCH_UP_PARTITIONS - 3


def test_reference_assets_are_not_partitioned():
    by_name = {a.key.to_user_string(): a for a in market_assets}
    assert by_name["stock_basic"].partitions_def is None
    assert by_name["daily"].partitions_def.get_partition_keys()[0] <= "2021-11-28"


# --- a day tushare has not published, and a day whose row count fails ---------------------


def catch_up_requests(defs, instance, day: str) -> list[str]:
    """The partitions the after-close schedule asks for at 18:00 on ``day``."""
    schedule = defs.resolve_schedule_def("market_data_after_close_schedule")
    tick = dt.datetime.fromisoformat(f"{day}T18:00:00+08:00")
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        return sorted(r.partition_key for r in schedule.evaluate_tick(context).run_requests or [])


def step_failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        event.event_specific_data.error.to_string()
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    ]


def test_first_sync_before_publication_fails_and_is_caught_up(defs, instance, server, resources):
    server.short_reply("daily", 0, trade_date="20261127")

    result = run_job(defs, instance, OPEN_DAY)

    assert not result.success
    (message,) = step_failure_messages(result)
    assert "daily for 2026-11-27 is not published yet: tushare replied 0 rows" in message
    assert resources["warehouse"].count_rows("daily") == 0
    for asset in ("daily", "factor_daily"):
        assert OPEN_DAY not in instance.get_materialized_partitions(dg.AssetKey(asset))
    assert OPEN_DAY in catch_up_requests(defs, instance, OPEN_DAY)

    server.clear_faults()
    assert run_job(defs, instance, OPEN_DAY).success
    assert OPEN_DAY not in catch_up_requests(defs, instance, OPEN_DAY)


def test_a_day_without_its_screens_and_statistics_is_caught_up(defs, instance):
    """Every partitioned asset of the job counts, down to the last two it runs."""
    tables = ["stock_basic", "trade_cal", *TRADING_DAY_APIS, "factor_daily"]
    assert run_job(defs, instance, OPEN_DAY, OPEN_DAY, assets=tables).success

    assert OPEN_DAY in catch_up_requests(defs, instance, OPEN_DAY)

    assert run_job(defs, instance, OPEN_DAY, OPEN_DAY, assets=["stock_screen"]).success
    assert OPEN_DAY in catch_up_requests(defs, instance, OPEN_DAY)
    assert run_job(defs, instance, OPEN_DAY, OPEN_DAY, assets=["table_statistics"]).success
    assert OPEN_DAY not in catch_up_requests(defs, instance, OPEN_DAY)


@pytest.mark.parametrize("rows", [0, 30])
def test_resync_with_an_empty_or_short_reply_keeps_the_stored_day(
    defs, instance, server, resources, rows
):
    assert run_job(defs, instance, OPEN_DAY).success
    warehouse = resources["warehouse"]
    before = {t: warehouse.read_table(t) for t in (*TRADING_DAY_APIS, "factor_daily")}
    assert len(before["daily"]) > 250
    server.short_reply("daily_basic", rows, trade_date="20261127")

    result = run_job(defs, instance, OPEN_DAY)

    assert not result.success
    (message,) = step_failure_messages(result)
    assert f"daily_basic for 2026-11-27 is not published yet: tushare replied {rows} rows" in (
        message
    )
    for table, frame in before.items():
        pd.testing.assert_frame_equal(warehouse.read_table(table), frame)


def test_failed_row_count_blocks_the_factors_and_is_caught_up(defs, instance, server, resources):
    """The stock list went stale (most stocks gone from it): daily has more rows than stocks
    listed, the blocking check fails, factor_daily does not run, and the catch-up asks for
    the day again although every asset of it has been materialized before."""
    assert run_job(defs, instance, OPEN_DAY).success
    assert OPEN_DAY not in catch_up_requests(defs, instance, OPEN_DAY)
    warehouse = resources["warehouse"]
    factors_before = warehouse.read_table("factor_daily")
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM stock_basic WHERE ts_code > '000200'")
    server.short_reply("stock_basic", 0)

    result = run_job(defs, instance, OPEN_DAY)

    assert not result.success
    failed_checks = {
        (e.asset_key.path[0], e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    assert ("daily", "row_count_vs_listed") in failed_checks
    assert "factor_daily" not in {e.step_key for e in result.get_step_success_events()}
    written = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert "factor_daily" not in written and "daily" in written
    pd.testing.assert_frame_equal(warehouse.read_table("factor_daily"), factors_before)
    assert OPEN_DAY in catch_up_requests(defs, instance, OPEN_DAY)

    server.clear_faults()
    assert run_job(defs, instance, OPEN_DAY).success
    assert OPEN_DAY not in catch_up_requests(defs, instance, OPEN_DAY)


def partition_metadata(instance, asset: str) -> dict[str, dict]:
    """Each partition's metadata as the instance stores its materialization (the figures
    its page in the UI shows)."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    return {
        record.asset_materialization.partition: {
            name: value.value for name, value in record.asset_materialization.metadata.items()
        }
        for record in records
    }


def test_each_partition_of_a_ranged_run_shows_its_own_day(defs, instance, server, resources):
    days = ["2026-11-25", "2026-11-26", "2026-11-27"]

    assert run_job(defs, instance, days[0], days[-1]).success

    warehouse = resources["warehouse"]
    for asset in (*TRADING_DAY_APIS, "factor_daily"):
        shown = partition_metadata(instance, asset)
        assert sorted(shown) == days, asset
        stored = {
            day: warehouse.count_rows(asset, trade_date=dt.date.fromisoformat(day)) for day in days
        }
        assert {day: shown[day]["rows"] for day in days} == stored, asset
        if asset != "factor_daily":
            # Three days of the sample market: one code-list call, counted on its first day.
            assert [shown[day]["api_calls"] for day in days] == [1, 0, 0], asset
    # Suspensions make the days differ, so run totals on every day could not pass the above.
    assert len(set(partition_metadata(instance, "daily")[day]["rows"] for day in days)) > 1
