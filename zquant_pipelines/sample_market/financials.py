"""The sample market's financial statements: income, balancesheet, cashflow, fina_indicator.

Owns, per report period (quarter end) and stock listed at its end, when the statements are
announced and what they say, and answers the four APIs and their whole-market ``*_vip``
variants in tushare's wire format (dates YYYYMMDD, flags and types as text).

- Announcements fall between a few weeks after the period end and the statutory deadline
  (Q1 30 April, H1 31 August, Q3 31 October, the annual report 30 April of the next year);
  a few stocks announce late, one and a half to five months after the deadline.
- Some statements are restated: a second version announced 3 weeks to 7 months after the
  first, with ann_date the restatement's and f_ann_date the first announcement's, and
  figures a few percent off. Once the restatement is out (as of ``as_of``) the first
  version's update_flag is 0, as tushare flags a superseded row.
- Only consolidated statements (report_type 1, tushare's default) exist; asking another
  report type gets no row.

The figures follow the universe's fundamentals (TTM revenue and profit, net assets: the
ones daily_basic's pe and pb read), year to date for flows. Draws come from their own
random stream per period, so adding this part changed no earlier draw of the market.
"""

import datetime as dt
import functools

import numpy as np
import pandas as pd

from zquant_pipelines.datasets import SqlType
from zquant_pipelines.datasets import financials as fd
from zquant_pipelines.dates import is_quarter_end, parse_tushare_date, quarter_end
from zquant_pipelines.sample_market.calendar import numpy_day, yyyymmdd
from zquant_pipelines.sample_market.universe import Universe

FINANCIALS_STREAM = 3
# (month, day) of the statutory deadline per quarter, and whether it falls in the next year.
_DEADLINES = (((4, 30), False), ((8, 31), False), ((10, 31), False), ((4, 30), True))
# Days after the period end before the first announcements (annual reports take longer).
_FIRST_ANNOUNCEMENT_DAYS = (15, 15, 15, 30)
LATE_SHARE, LATE_DAYS = 0.04, (45, 150)
RESTATED_SHARE, RESTATEMENT_DAYS, RESTATEMENT_CHANGE = 0.06, (21, 210), 0.08
# Company types by industry (comp_type: 1 industrial, 2 bank, 4 securities).
_COMP_TYPES = {"银行": "2", "证券": "4"}
# Lines a bank or a broker leaves empty (no inventories, no current/non-current split).
_NOT_FOR_FINANCIALS = frozenset(
    {
        "oper_cost",
        "inventories",
        "total_cur_assets",
        "total_cur_liab",
        "current_ratio",
        "quick_ratio",
        "gross_margin",
        "grossprofit_margin",
    }
)
# Each number field: (base, low, high): the base figure of the stock and period times a
# per-stock-and-period draw from [low, high]. Bases are in ``_bases``.
_SCALES: dict[str, tuple[str, float, float]] = {
    # income, year to date
    "basic_eps": ("eps", 1.0, 1.0),
    "diluted_eps": ("eps", 0.97, 1.0),
    "total_revenue": ("revenue", 1.0, 1.0),
    "revenue": ("revenue", 0.96, 1.0),
    "total_cogs": ("revenue", 0.75, 0.95),
    "oper_cost": ("revenue", 0.55, 0.8),
    "sell_exp": ("revenue", 0.02, 0.1),
    "admin_exp": ("revenue", 0.02, 0.08),
    "fin_exp": ("revenue", -0.01, 0.03),
    "rd_exp": ("revenue", 0.0, 0.08),
    "operate_profit": ("profit", 1.2, 1.35),
    "non_oper_income": ("profit", 0.0, 0.05),
    "non_oper_exp": ("profit", 0.0, 0.03),
    "total_profit": ("profit", 1.25, 1.35),
    "income_tax": ("profit", 0.2, 0.33),
    "n_income": ("profit", 1.0, 1.0),
    "n_income_attr_p": ("profit", 0.9, 1.0),
    "minority_gain": ("profit", 0.0, 0.1),
    "ebit": ("profit", 1.3, 1.5),
    "ebitda": ("profit", 1.5, 2.2),
    # balance sheet, at the period end
    "total_share": ("shares", 1.0, 1.0),
    "cap_rese": ("equity", 0.1, 0.4),
    "undistr_porfit": ("equity", 0.2, 0.5),
    "surplus_rese": ("equity", 0.02, 0.1),
    "money_cap": ("assets", 0.05, 0.25),
    "accounts_receiv": ("assets", 0.02, 0.2),
    "inventories": ("assets", 0.0, 0.25),
    "total_cur_assets": ("assets", 0.3, 0.6),
    "fix_assets": ("assets", 0.1, 0.4),
    "goodwill": ("assets", 0.0, 0.05),
    "total_nca": ("assets", 0.4, 0.7),
    "total_assets": ("assets", 1.0, 1.0),
    "st_borr": ("debt", 0.05, 0.3),
    "acct_payable": ("debt", 0.1, 0.3),
    "total_cur_liab": ("debt", 0.5, 0.8),
    "lt_borr": ("debt", 0.05, 0.3),
    "bond_payable": ("debt", 0.0, 0.1),
    "total_ncl": ("debt", 0.2, 0.5),
    "total_liab": ("debt", 1.0, 1.0),
    "total_hldr_eqy_exc_min_int": ("equity", 1.0, 1.0),
    "minority_int": ("equity", 0.0, 0.1),
    "total_hldr_eqy_inc_min_int": ("equity", 1.0, 1.1),
    # cash flow, year to date
    "net_profit": ("profit", 1.0, 1.0),
    "c_fr_sale_sg": ("revenue", 0.9, 1.1),
    "c_inf_fr_operate_a": ("revenue", 0.95, 1.15),
    "c_paid_goods_s": ("revenue", 0.5, 0.8),
    "c_paid_to_for_empl": ("revenue", 0.05, 0.15),
    "st_cash_out_act": ("revenue", 0.8, 1.0),
    "n_cashflow_act": ("profit", 0.6, 1.6),
    "c_pay_acq_const_fiolta": ("revenue", 0.02, 0.12),
    "stot_inflows_inv_act": ("revenue", 0.0, 0.1),
    "stot_out_inv_act": ("revenue", 0.05, 0.2),
    "n_cashflow_inv_act": ("revenue", -0.15, 0.02),
    "c_recp_borrow": ("debt", 0.05, 0.3),
    "c_prepay_amt_borr": ("debt", 0.05, 0.3),
    "c_pay_dist_dpcp_int_exp": ("profit", 0.1, 0.5),
    "n_cash_flows_fnc_act": ("revenue", -0.1, 0.1),
    "n_incr_cash_cash_equ": ("revenue", -0.1, 0.1),
    "c_cash_equ_beg_period": ("assets", 0.05, 0.2),
    "c_cash_equ_end_period": ("assets", 0.05, 0.25),
    "free_cashflow": ("profit", -0.5, 1.2),
    # indicators
    "eps": ("eps", 1.0, 1.0),
    "dt_eps": ("eps", 0.97, 1.0),
    "bps": ("bps", 1.0, 1.0),
    "ocfps": ("eps", 0.6, 1.6),
    "cfps": ("eps", -0.5, 1.5),
    "revenue_ps": ("revenue_ps", 1.0, 1.0),
    "profit_dedt": ("profit", 0.85, 1.0),
    "gross_margin": ("revenue", 0.2, 0.45),
    "current_ratio": ("unit", 0.8, 3.0),
    "quick_ratio": ("unit", 0.5, 2.0),
    "roe": ("roe", 1.0, 1.0),
    "roe_dt": ("roe", 0.85, 1.0),
    "roa": ("roa", 1.0, 1.0),
    "grossprofit_margin": ("unit", 15.0, 45.0),
    "netprofit_margin": ("margin", 1.0, 1.0),
    "debt_to_assets": ("debt_share", 1.0, 1.0),
    "assets_turn": ("turnover", 1.0, 1.0),
    "basic_eps_yoy": ("unit", -40.0, 60.0),
    "netprofit_yoy": ("unit", -40.0, 60.0),
    "or_yoy": ("unit", -20.0, 40.0),
    "ocf_yoy": ("unit", -60.0, 80.0),
    "roe_yoy": ("unit", -40.0, 40.0),
}


class FinancialStatements:
    """The statements of a universe's stocks, answering the report-period APIs as of a day."""

    def __init__(self, universe: Universe, seed: int, as_of: dt.date):
        self._universe = universe
        self._seed = seed
        self.as_of = as_of
        # Report k is the universe's fundamentals row k: quarter k % 4 of first_year + k // 4.
        self.first_year = universe.trading_days[0].astype(dt.date).year - 2
        self.n_periods = len(universe.report_published)
        future = np.append(universe.trade_date_strings, "99999999")
        self._delist_date = future[universe.delist_day]
        self._comp_type = np.array(
            [_COMP_TYPES.get(industry, "1") for industry in universe.table["industry"]],
            dtype=object,
        )

    def handlers(self) -> dict:
        """``api name -> (params it takes, handler)``, for SampleMarket's dispatch."""
        handlers = {}
        for api in fd.REPORT_PERIOD_APIS:
            params = ("ts_code", "ann_date", "start_date", "end_date", "period")
            if api != "fina_indicator":
                params += ("f_ann_date", "report_type", "comp_type")
            for name in (api, fd.vip_api(api)):
                handlers[name] = (params, functools.partial(self.query, name))
        return handlers

    def period_of(self, index: int) -> dt.date:
        return quarter_end(self.first_year + index // 4, index % 4)

    def query(self, api_name: str, given: dict) -> pd.DataFrame:
        api = fd.base_api(api_name)
        if api_name == api and "ts_code" not in given:
            raise ValueError(
                f"{api_name} takes one stock (ts_code is required); the whole market of a"
                f" period is {fd.vip_api(api)}"
            )
        if given.get("report_type", fd.CONSOLIDATED_REPORT_TYPE) != fd.CONSOLIDATED_REPORT_TYPE:
            return pd.DataFrame(columns=list(fd.field_names(api)))
        frames = [self._rows(api, index) for index in self._periods(api, given)]
        rows = pd.concat(frames, ignore_index=True) if frames else self._rows(api, None)
        rows = rows[self._wanted(api, rows, given)]
        newest_first = [True, False, False]
        order = rows.sort_values(["ts_code", "end_date", "ann_date"], ascending=newest_first)
        return order.loc[:, list(fd.field_names(api))].reset_index(drop=True)

    def _periods(self, api: str, given: dict) -> list[int]:
        """Report indices asked: the one of ``period``, or every one ended by as_of."""
        if "period" in given:
            period = parse_tushare_date(given["period"], "period")
            if not is_quarter_end(period):
                raise ValueError(f"period {given['period']!r} is not a quarter end")
            index = (period.year - self.first_year) * 4 + (period.month - 1) // 3
            return [index] if 0 <= index < self.n_periods else []
        return [k for k in range(self.n_periods) if self.period_of(k) <= self.as_of]

    def _wanted(self, api: str, rows: pd.DataFrame, given: dict) -> pd.Series:
        keep = pd.Series(True, index=rows.index)
        if "ts_code" in given:
            keep &= rows["ts_code"].isin(str(given["ts_code"]).split(","))
        for column in ("ann_date", "f_ann_date", "comp_type"):
            if column in given:
                keep &= rows[column] == str(given[column])
        # fina_indicator's start/end bound the report period, the statements' the announcement.
        bounded = "end_date" if api == "fina_indicator" else "ann_date"
        if "start_date" in given:
            keep &= rows[bounded] >= str(given["start_date"])
        if "end_date" in given:
            keep &= rows[bounded] <= str(given["end_date"])
        return keep

    def _rows(self, api: str, index: int | None) -> pd.DataFrame:
        """Every version of period ``index``'s statements of ``api`` announced by as_of."""
        if index is None:
            return pd.DataFrame(columns=[*fd.field_names(api), "known"])
        versions = self._versions(index)
        as_of = f"{self.as_of:%Y%m%d}"
        visible = versions[versions["known"] <= as_of]
        restated_out = set(visible.loc[visible["version"] == 1, "stock"])
        frame = visible.assign(
            update_flag=np.where(
                (visible["version"] == 0) & visible["stock"].isin(restated_out), "0", "1"
            ).astype(object)
        )
        values = self._values(index)
        stocks = frame["stock"].to_numpy()
        change = np.where(frame["version"].to_numpy() == 1, values["restatement"][stocks], 1.0)
        out = {
            "ts_code": self._universe.codes[stocks],
            "ann_date": frame["ann_date"].to_numpy(),
            "f_ann_date": frame["f_ann_date"].to_numpy(),
            "end_date": np.full(len(frame), f"{self.period_of(index):%Y%m%d}", dtype=object),
            "report_type": np.full(len(frame), fd.CONSOLIDATED_REPORT_TYPE, dtype=object),
            "comp_type": self._comp_type[stocks],
            "end_type": np.full(len(frame), str(index % 4 + 1), dtype=object),
            "update_flag": frame["update_flag"].to_numpy(),
            "known": frame["known"].to_numpy(),
        }
        financial = self._comp_type[stocks] != "1"
        for field in fd.columns_of(api):
            if field.sql_type is not SqlType.DOUBLE:
                continue
            column = np.round(values[field.name][stocks] * change, 4)
            if field.name in _NOT_FOR_FINANCIALS:
                column = np.where(financial, np.nan, column)
            out[field.name] = column
        return pd.DataFrame(out)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per market, kept with it
    def _versions(self, index: int) -> pd.DataFrame:
        """stock, version (0 first, 1 restated), ann_date, f_ann_date and known (the later
        of the two, YYYYMMDD) of every statement of period ``index``, announced or not."""
        rng = np.random.default_rng([self._seed, FINANCIALS_STREAM, index])
        n = self._universe.n_stocks
        period = self.period_of(index)
        (month, day), next_year = _DEADLINES[index % 4]
        deadline = dt.date(period.year + next_year, month, day)
        first = period + dt.timedelta(days=_FIRST_ANNOUNCEMENT_DAYS[index % 4])
        window = (deadline - first).days
        offset = (rng.random(n) * (window + 1)).astype(int)
        late = rng.random(n) < LATE_SHARE
        late_days = rng.integers(*LATE_DAYS, size=n)
        restated = rng.random(n) < RESTATED_SHARE
        restatement_days = rng.integers(*RESTATEMENT_DAYS, size=n)

        start = numpy_day(first)
        announced = start + offset + np.where(late, (deadline - first).days - offset + late_days, 0)
        period_text = f"{period:%Y%m%d}"
        listed = (self._universe.list_date <= period_text) & (self._delist_date > period_text)
        stock = np.flatnonzero(listed)
        first_text = yyyymmdd(announced[stock])
        again = stock[restated[stock]]
        again_text = yyyymmdd(announced[again] + restatement_days[again])
        return pd.DataFrame(
            {
                "stock": np.concatenate([stock, again]),
                "version": np.repeat([0, 1], [len(stock), len(again)]),
                "ann_date": np.concatenate([first_text, again_text]),
                "f_ann_date": np.concatenate([first_text, yyyymmdd(announced[again])]),
                "known": np.concatenate([first_text, again_text]),
            }
        )

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per market, kept with it
    def _values(self, index: int) -> dict[str, np.ndarray]:
        """Every number field of period ``index`` per stock, and each stock's restatement
        factor (``restatement``)."""
        u = self._universe
        rng = np.random.default_rng([self._seed, FINANCIALS_STREAM, index, 1])
        n = u.n_stocks
        year_share = (index % 4 + 1) / 4
        shares = u.total_share * 1e4  # 万股 -> 股
        revenue = u.revenue_ttm[index] * year_share * 1e4  # 万元 -> 元, year to date
        profit = u.profit_ttm[index] * year_share * 1e4
        equity = u.net_assets[index] * 1e4
        assets = equity * rng.uniform(1.5, 4.0, n)
        bases = {
            "revenue": revenue,
            "profit": profit,
            "equity": equity,
            "assets": assets,
            "debt": assets - equity,
            "shares": shares,
            "eps": profit / shares,
            "bps": equity / shares,
            "revenue_ps": revenue / shares,
            "roe": profit / equity * 100,
            "roa": profit / assets * 100,
            "margin": profit / revenue * 100,
            "debt_share": (assets - equity) / assets * 100,
            "turnover": revenue / assets,
            "unit": np.ones(n),
        }
        values = {
            name: bases[base] * rng.uniform(low, high, n)
            for name, (base, low, high) in _SCALES.items()
        }
        values["restatement"] = 1 + rng.uniform(-RESTATEMENT_CHANGE, RESTATEMENT_CHANGE, n)
        return values
