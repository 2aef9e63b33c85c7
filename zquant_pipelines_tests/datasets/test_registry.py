"""The dataset registry: declarations are checked, every declared dataset has its table,
asset and checks, and docs/datasets.md and README's data table are the registry's."""

import dataclasses

import pytest

from zquant_pipelines.assets.financials import report_period_assets
from zquant_pipelines.assets.market import market_assets
from zquant_pipelines.constants import DATASETS
from zquant_pipelines.datasets import Column, Partitioning, SqlType
from zquant_pipelines.datasets.declaration import registry_of
from zquant_pipelines.datasets.docs import (
    DOCS_FILE,
    README_FILE,
    generated_section,
    render_datasets_doc,
    render_readme_table,
)
from zquant_pipelines.datasets.market import DAILY
from zquant_pipelines.resources.warehouse_schema import SQL_TYPES, TABLES

REGENERATE = "out of date: run python -m zquant_pipelines.datasets.docs"


def test_docs_datasets_md_is_the_registry():
    assert DOCS_FILE.read_text(encoding="utf-8") == render_datasets_doc(), REGENERATE


def test_readme_data_table_is_the_registry():
    section = generated_section(README_FILE.read_text(encoding="utf-8"))
    assert section == render_readme_table(), REGENERATE
    for name in DATASETS:
        assert f"| `{name}` |" in section


def test_a_change_to_a_declaration_shows_in_the_docs():
    # The drift tests can fail: the rendering follows the declaration.
    before = render_datasets_doc()
    DATASETS["daily"] = dataclasses.replace(DAILY, row_limit=5000)
    try:
        assert render_datasets_doc() != before
        assert "rows per call: 5,000" in render_datasets_doc()
    finally:
        DATASETS["daily"] = DAILY


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_dataset_has_its_table_as_declared(name):
    dataset = DATASETS[name]
    table = TABLES[name]
    assert [column.name for column in table.columns] == list(dataset.fields)
    assert [column.name for column in table.primary_key] == list(dataset.keys)
    for declared in dataset.columns:
        stored = table.c[declared.name]
        assert isinstance(stored.type, SQL_TYPES[declared.sql_type]), declared.name
        assert stored.comment == declared.comment


def test_each_dataset_has_one_asset_with_its_declared_checks():
    assets = [*market_assets, *report_period_assets]
    assert [asset.key.to_user_string() for asset in assets] == list(DATASETS)
    for asset in assets:
        dataset = DATASETS[asset.key.to_user_string()]
        checks = sorted(spec.name for spec in asset.check_specs)
        assert checks == sorted(dataset.checks)
        partitioned = asset.partitions_def is not None
        assert partitioned == (dataset.partitioning is not Partitioning.REFERENCE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"keys": ("ts_code", "day")},
            "keys \\['ts_code', 'day'\\] must be columns; not \\['day'\\]",
        ),
        ({"min_listed_share": None}, "min_listed_share None must be in \\(0, 1\\]"),
        ({"min_listed_share": 1.5}, "min_listed_share 1.5 must be in"),
        ({"published": "4pm"}, "published '4pm' is not HH:MM"),
        ({"row_limit": 0}, "row_limit 0 must be >= 1"),
        (
            {"columns": (*DAILY.columns, DAILY.columns[2])},
            "columns \\['open'\\] are declared twice",
        ),
        ({"name": "Daily Bars"}, "name must be lower_snake_case"),
        (
            {"partitioning": Partitioning.REPORT_PERIOD},
            "a report-period dataset is keyed by end_date",
        ),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_dataset_and_field(change, message):
    with pytest.raises(ValueError, match=f"dataset '.*': {message}"):
        dataclasses.replace(DAILY, **change)


def test_a_report_period_dataset_is_keyed_by_its_period():
    statement = dataclasses.replace(
        DAILY,
        name="income",
        partitioning=Partitioning.REPORT_PERIOD,
        keys=("ts_code", "end_date"),
        columns=(DAILY.columns[0], Column("end_date", SqlType.DATE, "report period")),
        min_listed_share=None,
        checks=(),
    )
    assert registry_of(statement)["income"].keys == ("ts_code", "end_date")


def test_a_name_declared_twice_or_a_column_with_two_types_is_refused():
    with pytest.raises(ValueError, match="dataset 'daily' is declared twice"):
        registry_of(DAILY, DAILY)
    text_open = dataclasses.replace(
        DAILY,
        name="other",
        columns=(*DAILY.columns[:2], Column("open", SqlType.TEXT, "open")),
    )
    with pytest.raises(ValueError, match="column 'open' is text in 'other' but double in 'daily'"):
        registry_of(DAILY, text_open)
