"""The factor registry is the one source of factor_daily's columns, the asset's column
metadata and docs/factors.md; selections, required inputs; ZQUANT_FACTORS_MODULE."""

import os
import subprocess
import sys
import textwrap

import pytest

from zquant_pipelines.assets.factors import factor_daily
from zquant_pipelines.constants import ENV_FACTORS_MODULE, REPO_ROOT
from zquant_pipelines.factors.docs import DOCS_FILE, generated_section, render_factor_table
from zquant_pipelines.factors.library import REGISTRY, build_registry, compute_factor_daily
from zquant_pipelines.factors.registry import FactorModuleError, required_inputs
from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS
from zquant_pipelines_tests.support.synthetic_market import synthetic_market

GOOD_MODULE = """
from zquant_pipelines.factors.registry import Factor


def gap_up(data, threshold):
    return (data["daily.open"] / data["daily.pre_close"] - 1 >= threshold).astype(float)


FACTORS = [
    Factor(
        name="gap_up_2pct",
        function=gap_up,
        inputs=("daily.open", "daily.pre_close"),
        unit="flag",
        null_rule="never",
        description="opened 2% or more above pre_close",
        parameters={"threshold": 0.02},
    )
]
"""


def test_docs_table_is_the_registry():
    assert (
        generated_section(DOCS_FILE.read_text()) == render_factor_table()
    ), "docs/factors.md is out of date: run python -m zquant_pipelines.factors.docs"


def test_table_columns_and_asset_column_metadata_are_the_registry():
    assert TABLE_COLUMNS["factor_daily"] == ("ts_code", "trade_date", *REGISTRY.columns)
    schema = factor_daily.specs_by_key[factor_daily.key].metadata["dagster/column_schema"]
    columns = {column.name: column.description for column in schema.columns}
    assert list(columns) == list(TABLE_COLUMNS["factor_daily"])
    for factor in REGISTRY.factors.values():
        assert factor.description in columns[factor.name]
        assert factor.unit in columns[factor.name]


def test_a_selection_reads_only_the_columns_it_needs():
    assert required_inputs(REGISTRY.select(["momentum_5"])) == {
        "daily": ["ts_code", "trade_date", "close"],
        "adj_factor": ["ts_code", "trade_date", "adj_factor"],
    }
    hyper = required_inputs(REGISTRY.select(["hyper_activity"]))
    assert "adj_factor" not in hyper
    assert set(hyper["daily_basic"]) == {"ts_code", "trade_date", "turnover_rate", "total_mv",
                                         "circ_mv"}  # fmt: skip
    # Computing from exactly those columns works (nothing undeclared is read).
    daily, adj, basic = synthetic_market(5, 40, seed=3)
    only = {table: frame[hyper.get(table, [])] for table, frame in
            (("daily", daily), ("adj_factor", adj), ("daily_basic", basic))}  # fmt: skip
    result = compute_factor_daily(**only, factors=REGISTRY.select(["hyper_activity"]))
    assert result["ma5_tr"].notna().any()


def write_module(folder, name: str, text: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def module_folder(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_factor_module_adds_factors(module_folder):
    write_module(module_folder, "good_factors_a", GOOD_MODULE)
    registry = build_registry("good_factors_a")

    assert registry.columns[-1] == "gap_up_2pct"
    assert registry.columns[:-1] == REGISTRY.columns
    result = compute_factor_daily(
        *synthetic_market(4, 30, seed=2), factors=registry.select(["gap_up_2pct"])
    )
    assert set(result["gap_up_2pct"]) == {0.0, 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("import no_such_package_here\n", "cannot be imported: ModuleNotFoundError"),
        ("raise RuntimeError('boom')\n", "cannot be imported: RuntimeError: boom"),
        ("FACTORS = None\n", "must define FACTORS, a list of Factor or Family"),
        ("FACTORS = ['ma5_tr']\n", "FACTORS holds 'ma5_tr', not a Factor or Family"),
        (GOOD_MODULE.replace("gap_up_2pct", "ma5_tr"), "factor 'ma5_tr' is declared twice"),
        (GOOD_MODULE.replace("gap_up_2pct", "Gap Up"), "factor name 'Gap Up' must be"),
    ],
)
def test_a_bad_factor_module_is_named(module_folder, text, message):
    name = f"bad_factors_{abs(hash(text))}"
    write_module(module_folder, name, text)
    with pytest.raises(FactorModuleError, match=rf"ZQUANT_FACTORS_MODULE='{name}'.*{message}"):
        build_registry(name)


def test_bad_modules_are_errors_of_the_code_location(module_folder):
    """Loading the definitions with a bad module fails naming it; with a good one the
    factor is a column of factor_daily (table and asset metadata)."""
    write_module(module_folder, "good_factors_b", GOOD_MODULE)
    write_module(module_folder, "bad_factors_b", "FACTORS = 'gap_up'\n")
    script = (
        "from zquant_pipelines.definitions import defs;"
        "from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS;"
        "spec = next(s for s in defs.resolve_all_asset_specs()"
        " if s.key.to_user_string() == 'factor_daily');"
        "print(TABLE_COLUMNS['factor_daily'][-1],"
        " spec.metadata['dagster/column_schema'].columns[-1].name)"
    )
    # Both at once: each process spends most of its time importing Dagster.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env={
                **os.environ,
                ENV_FACTORS_MODULE: module,
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(module_folder)]),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in ("bad_factors_b", "good_factors_b")
    ]
    (bad_out, bad_err), (good_out, good_err) = (p.communicate(timeout=300) for p in processes)
    assert processes[0].returncode != 0
    assert "FactorModuleError: ZQUANT_FACTORS_MODULE='bad_factors_b'" in bad_err
    assert processes[1].returncode == 0, good_err
    assert good_out.split() == ["gap_up_2pct", "gap_up_2pct"]
