"""The report-period datasets: tushare's financial statements, declared once.

``income``, ``balancesheet``, ``cashflow`` and ``fina_indicator``, partitioned by report
period (quarter ends): the fields we keep of each (tushare's names and order, the main
lines), their types and units, the key that tells one version of a statement from
another, tushare's rows per call, and the whole-market ``*_vip`` variant of each (same
params and fields, 5000 points). Standard library only, like the rest of the registry.

Amounts of the three statements are CNY (元) as tushare sends them, flows year to date;
per-share values CNY per share; ratios and growth rates %; the column comments say which.

Versions: tushare keeps every announcement of a statement (a restatement adds a row with a
later announcement date and sets the superseded row's ``update_flag`` to 0). The key holds
the announcement dates, the report type and the update flag, so no version, nor a change of
a version's flag, ever replaces another row (sync/financials.py).
"""

from zquant_pipelines.datasets.declaration import (
    Column,
    Dataset,
    Partitioning,
    date,
    double,
    text,
)
from zquant_pipelines.datasets.market import TS_CODE

VIP_SUFFIX = "_vip"
# Consolidated statements (合并报表): tushare's default report_type, the one synced.
CONSOLIDATED_REPORT_TYPE = "1"
# Rows per call. Copies of tushare's docs report 100 for balancesheet, cashflow and
# fina_indicator and 500 for income. A limit set above tushare's own truncates a reply
# without notice (the client pages only while a page is full), one set below only costs
# pages, so all four page at the lowest reported figure. The *_vip variants share them;
# TushareClient.api_row_limits overrides them.
STATEMENT_ROW_LIMIT = 100


def _cny(name: str, comment: str) -> Column:
    return double(name, f"{comment}, CNY (元)")


_ANN_DATE = date("ann_date", "announcement date (公告日期)")
_F_ANN_DATE = date("f_ann_date", "actual announcement date (实际公告日期)")
_END_DATE = date("end_date", "report period: the quarter end (报告期)")
_REPORT_TYPE = text("report_type", "report type; 1 consolidated (合并报表), the one synced")
_COMP_TYPE = text("comp_type", "company type: 1 industrial, 2 bank, 3 insurance, 4 securities")
_END_TYPE = text("end_type", "period type (报告期类型)")
_UPDATE_FLAG = text(
    "update_flag", "1: the latest version of the statement, 0: superseded by a restatement"
)
_STATEMENT_HEAD = (TS_CODE, _ANN_DATE, _F_ANN_DATE, _END_DATE, _REPORT_TYPE, _COMP_TYPE, _END_TYPE)

_COLUMNS: dict[str, tuple[Column, ...]] = {
    "income": (
        *_STATEMENT_HEAD,
        double("basic_eps", "basic EPS, CNY per share"),
        double("diluted_eps", "diluted EPS, CNY per share"),
        _cny("total_revenue", "total revenue (营业总收入), year to date"),
        _cny("revenue", "revenue (营业收入), year to date"),
        _cny("total_cogs", "total operating cost (营业总成本), year to date"),
        _cny("oper_cost", "operating cost (营业成本), year to date"),
        _cny("sell_exp", "selling expenses, year to date"),
        _cny("admin_exp", "administrative expenses, year to date"),
        _cny("fin_exp", "financial expenses, year to date"),
        _cny("rd_exp", "R&D expenses, year to date"),
        _cny("operate_profit", "operating profit (营业利润), year to date"),
        _cny("non_oper_income", "non-operating income, year to date"),
        _cny("non_oper_exp", "non-operating expenses, year to date"),
        _cny("total_profit", "profit before tax (利润总额), year to date"),
        _cny("income_tax", "income tax, year to date"),
        _cny("n_income", "net profit (净利润), year to date"),
        _cny("n_income_attr_p", "net profit attributable to the parent, year to date"),
        _cny("minority_gain", "minority interest in profit, year to date"),
        _cny("ebit", "EBIT, year to date"),
        _cny("ebitda", "EBITDA, year to date"),
        _UPDATE_FLAG,
    ),
    "balancesheet": (
        *_STATEMENT_HEAD,
        double("total_share", "total shares at the period end, shares (股)"),
        _cny("cap_rese", "capital reserve (资本公积)"),
        _cny("undistr_porfit", "undistributed profit (未分配利润)"),
        _cny("surplus_rese", "surplus reserve (盈余公积)"),
        _cny("money_cap", "cash and equivalents (货币资金)"),
        _cny("accounts_receiv", "accounts receivable"),
        _cny("inventories", "inventories"),
        _cny("total_cur_assets", "total current assets"),
        _cny("fix_assets", "fixed assets"),
        _cny("goodwill", "goodwill"),
        _cny("total_nca", "total non-current assets"),
        _cny("total_assets", "total assets"),
        _cny("st_borr", "short-term borrowings"),
        _cny("acct_payable", "accounts payable"),
        _cny("total_cur_liab", "total current liabilities"),
        _cny("lt_borr", "long-term borrowings"),
        _cny("bond_payable", "bonds payable"),
        _cny("total_ncl", "total non-current liabilities"),
        _cny("total_liab", "total liabilities"),
        _cny("total_hldr_eqy_exc_min_int", "equity attributable to the parent"),
        _cny("minority_int", "minority interests"),
        _cny("total_hldr_eqy_inc_min_int", "total equity incl. minority interests"),
        _UPDATE_FLAG,
    ),
    "cashflow": (
        *_STATEMENT_HEAD,
        _cny("net_profit", "net profit, year to date"),
        _cny("c_fr_sale_sg", "cash received from sales of goods and services, year to date"),
        _cny("c_inf_fr_operate_a", "operating cash inflows, year to date"),
        _cny("c_paid_goods_s", "cash paid for goods and services, year to date"),
        _cny("c_paid_to_for_empl", "cash paid to employees, year to date"),
        _cny("st_cash_out_act", "operating cash outflows, year to date"),
        _cny("n_cashflow_act", "net operating cash flow, year to date"),
        _cny("c_pay_acq_const_fiolta", "capital expenditure (购建长期资产), year to date"),
        _cny("stot_inflows_inv_act", "investing cash inflows, year to date"),
        _cny("stot_out_inv_act", "investing cash outflows, year to date"),
        _cny("n_cashflow_inv_act", "net investing cash flow, year to date"),
        _cny("c_recp_borrow", "cash received from borrowings, year to date"),
        _cny("c_prepay_amt_borr", "cash repaid on borrowings, year to date"),
        _cny("c_pay_dist_dpcp_int_exp", "dividends and interest paid, year to date"),
        _cny("n_cash_flows_fnc_act", "net financing cash flow, year to date"),
        _cny("n_incr_cash_cash_equ", "net increase in cash and equivalents, year to date"),
        _cny("c_cash_equ_beg_period", "cash and equivalents at the period start"),
        _cny("c_cash_equ_end_period", "cash and equivalents at the period end"),
        _cny("free_cashflow", "free cash flow, year to date"),
        _UPDATE_FLAG,
    ),
    "fina_indicator": (
        TS_CODE,
        _ANN_DATE,
        _END_DATE,
        double("eps", "basic EPS, CNY per share"),
        double("dt_eps", "diluted EPS, CNY per share"),
        double("bps", "book value per share, CNY"),
        double("ocfps", "operating cash flow per share, CNY"),
        double("cfps", "cash flow per share, CNY"),
        double("revenue_ps", "revenue per share, CNY"),
        _cny("profit_dedt", "net profit excluding non-recurring items (扣非净利润)"),
        _cny("gross_margin", "gross profit (毛利)"),
        double("current_ratio", "current ratio, times"),
        double("quick_ratio", "quick ratio, times"),
        double("roe", "return on equity, %"),
        double("roe_dt", "return on equity excluding non-recurring items, %"),
        double("roa", "return on assets, %"),
        double("grossprofit_margin", "gross margin, %"),
        double("netprofit_margin", "net margin, %"),
        double("debt_to_assets", "liabilities over assets, %"),
        double("assets_turn", "asset turnover, times"),
        double("basic_eps_yoy", "basic EPS growth year on year, %"),
        double("netprofit_yoy", "net profit attributable to the parent, growth yoy, %"),
        double("or_yoy", "revenue growth year on year, %"),
        double("ocf_yoy", "operating cash flow growth year on year, %"),
        double("roe_yoy", "ROE growth year on year, %"),
        _UPDATE_FLAG,
    ),
}

_DESCRIPTIONS = {
    "income": "Income statements (利润表), consolidated, every version announced: amounts in"
    " CNY (元), year to date.",
    "balancesheet": "Balance sheets (资产负债表), consolidated, every version announced:"
    " amounts in CNY (元) at the period end.",
    "cashflow": "Cash-flow statements (现金流量表), consolidated, every version announced:"
    " amounts in CNY (元), year to date.",
    "fina_indicator": "Financial indicators (财务指标), every version announced: per-share"
    " values in CNY, ratios and growth in %.",
}
# The key of one version of a statement: the statement (stock, period, report type) and the
# announcement that published it, in column order (fina_indicator has neither f_ann_date
# nor report_type).
_STATEMENT_KEYS = ("ts_code", "ann_date", "f_ann_date", "end_date", "report_type", "update_flag")
_KEYS = {
    "income": _STATEMENT_KEYS,
    "balancesheet": _STATEMENT_KEYS,
    "cashflow": _STATEMENT_KEYS,
    "fina_indicator": ("ts_code", "ann_date", "end_date", "update_flag"),
}
FINANCIAL_DATASETS: tuple[Dataset, ...] = tuple(
    Dataset(
        name=name,
        description=_DESCRIPTIONS[name] + " tushare publishes a statement the evening it is"
        " announced (21:00-23:00), at the latest the next day.",
        partitioning=Partitioning.REPORT_PERIOD,
        keys=_KEYS[name],
        columns=columns,
        row_limit=STATEMENT_ROW_LIMIT,
        checks=("no_duplicate_keys", "stocks_vs_listed"),
    )
    for name, columns in _COLUMNS.items()
)
BY_NAME: dict[str, Dataset] = {dataset.name: dataset for dataset in FINANCIAL_DATASETS}
REPORT_PERIOD_APIS: tuple[str, ...] = tuple(BY_NAME)
KEYS: dict[str, tuple[str, ...]] = {name: d.keys for name, d in BY_NAME.items()}
ROW_LIMITS: dict[str, int] = {name: d.row_limit for name, d in BY_NAME.items()}
# The columns naming one statement (its versions share them).
STATEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    api: tuple(key for key in keys if key in ("ts_code", "end_date", "report_type"))
    for api, keys in KEYS.items()
}
# The dates a version was announced on; it is known from the latest of them (see
# sync/financials.py: tushare's docs and its users disagree on which one a restatement
# moves).
ANNOUNCEMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    api: tuple(key for key in keys if key in ("ann_date", "f_ann_date"))
    for api, keys in KEYS.items()
}


def check_api(api_name: str) -> None:
    if api_name not in BY_NAME:
        raise ValueError(f"api_name {api_name!r} is not a report-period API {REPORT_PERIOD_APIS}")


def vip_api(api_name: str) -> str:
    """The whole-market variant of a report-period API (``income`` -> ``income_vip``)."""
    check_api(api_name)
    return api_name + VIP_SUFFIX


def base_api(api_name: str) -> str:
    """The report-period API of ``api_name`` or of its *_vip variant."""
    base = api_name.removesuffix(VIP_SUFFIX)
    if base not in BY_NAME:
        raise ValueError(f"api_name {api_name!r} is not a report-period API or its _vip variant")
    return base


def columns_of(api_name: str) -> tuple[Column, ...]:
    """The columns of ``api_name`` (a report-period API or its *_vip variant)."""
    return BY_NAME[base_api(api_name)].columns


def field_names(api_name: str) -> tuple[str, ...]:
    """The fields asked of ``api_name`` (a report-period API or its *_vip variant)."""
    return BY_NAME[base_api(api_name)].fields


# The *_vip variants the client may ask besides the declared APIs, with their fields.
VIP_FIELDS: dict[str, tuple[str, ...]] = {vip_api(api): field_names(api) for api in BY_NAME}
VIP_ROW_LIMITS: dict[str, int] = {vip_api(api): ROW_LIMITS[api] for api in BY_NAME}
