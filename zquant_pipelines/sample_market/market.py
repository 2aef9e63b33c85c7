"""The deterministic offline A-share market that ``SampleMarketSource`` serves.

Owns the exchange calendar (closures written as data for 2019-2027), the generated
universe (boards, codes, names, listings, delistings, pauses, suspensions, dividends and
bonus shares), its price path, and the answers to tushare-shaped queries (``stock_basic``,
``trade_cal``, ``daily``, ``adj_factor``, ``daily_basic``) in tushare's wire format.

A market is a pure function of (seed, n_stocks, start_date); ``as_of`` only cuts the
history at the last open day on or before it. Random draws for day t happen in day order
whatever the horizon, so a day's values depend neither on what was asked before nor on how
far the history reaches. Plain numpy and pandas (no Dagster): benchmarks build a
5,000-stock market directly with ``sample_market(n_stocks=5000)``.
"""

import datetime as dt
import functools
import re
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from zquant_pipelines.constants import API_FIELDS, LIST_STATUSES
from zquant_pipelines.dates import market_today, parse_tushare_date

DEFAULT_SEED = 7
DEFAULT_N_STOCKS = 320
DEFAULT_START_DATE = "20190102"
MIN_N_STOCKS = 10
# The code blocks below hold enough symbols for this many stocks (tushare lists ~5,400).
MAX_N_STOCKS = 6000

CALENDAR_FIRST_DAY = dt.date(2019, 1, 1)
CALENDAR_LAST_DAY = dt.date(2027, 12, 31)
# History must leave room for listings, delistings and dividends before the calendar ends.
LAST_START_DATE = dt.date(2026, 12, 31)
# Early enough that the first served day's pretrade_date is a real open day.
_CALENDAR_LOOKBACK_DAY = dt.date(2018, 12, 17)
# SSE, SZSE and BSE share one calendar.
SERVED_EXCHANGES = ("SSE", "SZSE", "BSE")

# Days the exchanges were (or will be) closed besides weekends, as (festival, first day,
# last day) inclusive, from the State Council holiday notices and the exchanges' closure
# announcements. Weekend make-up working days do not open the exchanges. 2024's Spring
# Festival closure starts on New Year's Eve (exchange notice). 2027 is projected from the
# lunar calendar and the 2025 holiday rules until the State Council notice is out.
EXCHANGE_CLOSURES: tuple[tuple[str, str, str], ...] = (
    ("New Year", "20181230", "20190101"),
    ("Spring Festival", "20190204", "20190210"),
    ("Qingming", "20190405", "20190407"),
    ("Labour Day", "20190501", "20190504"),
    ("Dragon Boat", "20190607", "20190609"),
    ("Mid-Autumn", "20190913", "20190915"),
    ("National Day", "20191001", "20191007"),
    ("New Year", "20200101", "20200101"),
    # Extended to 2 February by the State Council (COVID-19).
    ("Spring Festival", "20200124", "20200202"),
    ("Qingming", "20200404", "20200406"),
    ("Labour Day", "20200501", "20200505"),
    ("Dragon Boat", "20200625", "20200627"),
    ("National Day and Mid-Autumn", "20201001", "20201008"),
    ("New Year", "20210101", "20210103"),
    ("Spring Festival", "20210211", "20210217"),
    ("Qingming", "20210403", "20210405"),
    ("Labour Day", "20210501", "20210505"),
    ("Dragon Boat", "20210612", "20210614"),
    ("Mid-Autumn", "20210919", "20210921"),
    ("National Day", "20211001", "20211007"),
    ("New Year", "20220101", "20220103"),
    ("Spring Festival", "20220131", "20220206"),
    ("Qingming", "20220403", "20220405"),
    ("Labour Day", "20220430", "20220504"),
    ("Dragon Boat", "20220603", "20220605"),
    ("Mid-Autumn", "20220910", "20220912"),
    ("National Day", "20221001", "20221007"),
    ("New Year", "20221231", "20230102"),
    ("Spring Festival", "20230121", "20230127"),
    ("Qingming", "20230405", "20230405"),
    ("Labour Day", "20230429", "20230503"),
    ("Dragon Boat", "20230622", "20230624"),
    ("Mid-Autumn and National Day", "20230929", "20231006"),
    ("New Year", "20240101", "20240101"),
    ("Spring Festival", "20240209", "20240217"),
    ("Qingming", "20240404", "20240406"),
    ("Labour Day", "20240501", "20240505"),
    ("Dragon Boat", "20240608", "20240610"),
    ("Mid-Autumn", "20240915", "20240917"),
    ("National Day", "20241001", "20241007"),
    ("New Year", "20250101", "20250101"),
    ("Spring Festival", "20250128", "20250204"),
    ("Qingming", "20250404", "20250406"),
    ("Labour Day", "20250501", "20250505"),
    ("Dragon Boat", "20250531", "20250602"),
    ("National Day and Mid-Autumn", "20251001", "20251008"),
    ("New Year", "20260101", "20260103"),
    ("Spring Festival", "20260215", "20260223"),
    ("Qingming", "20260404", "20260406"),
    ("Labour Day", "20260501", "20260505"),
    ("Dragon Boat", "20260619", "20260621"),
    ("Mid-Autumn", "20260925", "20260927"),
    ("National Day", "20261001", "20261007"),
    ("New Year", "20270101", "20270103"),
    ("Spring Festival", "20270205", "20270213"),
    ("Qingming", "20270403", "20270405"),
    ("Labour Day", "20270501", "20270505"),
    ("Dragon Boat", "20270609", "20270609"),
    ("Mid-Autumn", "20270915", "20270915"),
    ("National Day", "20271001", "20271007"),
)


@dataclass(frozen=True)
class Board:
    """One listing board: its code blocks, share of the universe and daily price limit."""

    market: str  # stock_basic.market
    exchange: str
    code_suffix: str
    code_blocks: tuple[tuple[int, int], ...]  # inclusive symbol ranges
    weight: float
    limit: float
    first_list_date: dt.date
    connect_flag: str  # is_hs of members of the Stock Connect
    # The limit before `limit_since` (ChiNext moved from 10% to 20% with registration).
    earlier_limit: float | None = None
    limit_since: dt.date | None = None


BOARDS: tuple[Board, ...] = (
    Board(
        "主板",
        "SSE",
        "SH",
        ((600000, 601999), (603000, 603999), (605000, 605599)),
        0.31,
        0.10,
        dt.date(1990, 12, 19),
        "H",
    ),
    Board("科创板", "SSE", "SH", ((688001, 688999),), 0.11, 0.20, dt.date(2019, 7, 22), "H"),
    Board("主板", "SZSE", "SZ", ((1, 3999),), 0.28, 0.10, dt.date(1991, 4, 3), "S"),
    Board(
        "创业板",
        "SZSE",
        "SZ",
        ((300001, 301999),),
        0.25,
        0.20,
        dt.date(2009, 10, 30),
        "S",
        earlier_limit=0.10,
        limit_since=dt.date(2020, 8, 24),
    ),
    Board(
        "北交所",
        "BSE",
        "BJ",
        ((430001, 430999), (830001, 839999), (870001, 873999)),
        0.05,
        0.30,
        dt.date(2021, 11, 15),
        "N",
    ),
)
MAIN_BOARD = "主板"
# Risk-warning (ST) names on the main boards move at most 5% a day.
ST_LIMIT = 0.05

_NAME_CHARS = "华东中新海天金恒宏长泰兴安信达国盛通远明光鑫瑞永嘉晨浙粤川鲁"
# tushare industry -> name endings that suggest it; a name's ending decides its industry.
_INDUSTRY_NAME_ENDINGS: dict[str, tuple[str, ...]] = {
    "银行": ("银行",),
    "证券": ("证券",),
    "软件服务": ("软件", "信息", "数据", "网络"),
    "半导体": ("微电", "芯源"),
    "元器件": ("电子", "光电", "精密"),
    "通信设备": ("通信", "光通"),
    "电气设备": ("电气", "电力", "电工"),
    "专用机械": ("机械", "重工", "智能"),
    "汽车配件": ("汽配", "汽车"),
    "化学制药": ("药业", "制药"),
    "生物制药": ("生物", "基因"),
    "医疗保健": ("医疗", "健康"),
    "食品": ("食品", "乳业"),
    "白酒": ("酒业",),
    "化工原料": ("化工", "化学"),
    "电气仪表": ("仪表", "仪器"),
    "新型电池": ("锂电", "能源"),
    "建筑工程": ("建设", "建工"),
    "全国地产": ("地产", "置业"),
    "普钢": ("钢铁",),
    "环境保护": ("环保", "环境"),
    "家用电器": ("电器",),
    "服饰": ("服饰", "纺织"),
}
_AREAS = (
    ("广东", 0.12),
    ("浙江", 0.12),
    ("江苏", 0.12),
    ("北京", 0.08),
    ("上海", 0.07),
    ("深圳", 0.07),
    ("山东", 0.05),
    ("福建", 0.03),
    ("四川", 0.03),
    ("安徽", 0.03),
    ("湖北", 0.03),
    ("湖南", 0.03),
    ("河南", 0.02),
    ("辽宁", 0.02),
    ("天津", 0.02),
    ("重庆", 0.02),
    ("陕西", 0.02),
    ("江西", 0.02),
    ("河北", 0.02),
    ("新疆", 0.02),
    ("吉林", 0.01),
    ("云南", 0.01),
)

# Universe shape. Shares of the universe, except the at-least counts for small markets.
_NEW_LISTING_SHARE = 0.15
_DELISTED_SHARE, _MIN_DELISTED = 0.04, 3
_PAUSED_SHARE, _MIN_PAUSED = 0.01, 2
_ST_SHARE = 0.05
_CONNECT_SHARE = 0.45
# Trading days a stock trades before it can be delisted or paused, or pay a dividend.
_DAYS_BEFORE_DELISTING = 120
_DAYS_BEFORE_DIVIDEND = 60
# Suspension spells per stock: 1 + Poisson; lengths geometric, some long (restructurings).
_EXTRA_SPELLS_MEAN = 2.0
_SPELL_LENGTH_P = 0.4
_LONG_SPELL_SHARE, _LONG_SPELL_DAYS = 0.05, (10, 60)
# Dividends: ((month, day) first, (month, day) last ex-day, chance a year, chance of bonus
# shares with it). Final dividends go ex in early summer, a few interims in the autumn.
_DIVIDEND_SEASONS = (((5, 20), (7, 31), 0.7, 0.1), ((9, 15), (11, 30), 0.1, 0.0))
_CASH_YIELD_RANGE = (0.004, 0.03)
_BONUS_RATIOS = np.array([0.2, 0.3, 0.4, 0.5, 0.8, 1.0])  # new shares per share held

# Daily returns: beta * market + sigma * noise + rare jumps, pulled back to the stock's
# anchor in hfq terms so prices stay in a realistic range over the years.
_MARKET_DRIFT, _MARKET_VOL = 0.0003, 0.011
_REVERSION = 0.003
# Jumps are sized in units of the stock's limit, so every board has limit-up and
# limit-down days.
_JUMP_CHANCE, _JUMP_SIZE = 0.004, (0.4, 1.5)
# Turnover (%) = base * exp(noise) * (1 + k * |return|), clipped to a realistic band.
_TURNOVER_NOISE, _TURNOVER_MOVE_GAIN, _TURNOVER_RANGE = 0.4, 10.0, (0.1, 20.0)

_UNIVERSE_STREAM, _PATH_STREAM = 1, 2
_TS_CODE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")


def _day(value: dt.date) -> np.datetime64:
    return np.datetime64(value, "D")


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    return pd.DatetimeIndex(days).strftime("%Y%m%d").to_numpy(dtype=object)


def _round_half_up(values: np.ndarray) -> np.ndarray:
    """Exchange rounding of prices held in cents (limit prices round half up)."""
    return np.floor(values + 0.5)


@functools.cache
def _calendar() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(every day, is_open, previous open day) from the lookback day to CALENDAR_LAST_DAY."""
    days = np.arange(_day(_CALENDAR_LOOKBACK_DAY), _day(CALENDAR_LAST_DAY) + 1)
    closed_days = np.concatenate(
        [
            np.arange(
                _day(parse_tushare_date(first, name)), _day(parse_tushare_date(last, name)) + 1
            )
            for name, first, last in EXCHANGE_CLOSURES
        ]
    )
    is_open = np.is_busday(days, holidays=closed_days)
    open_days = days[is_open]
    previous = np.searchsorted(open_days, days, side="left") - 1
    pretrade = np.where(previous >= 0, open_days[np.maximum(previous, 0)], np.datetime64("NaT"))
    return days, is_open, pretrade


def exchange_open_days(first: dt.date, last: dt.date) -> np.ndarray:
    """Open days of the exchanges in [first, last] (datetime64[D]), within the calendar."""
    days, is_open, _ = _calendar()
    keep = is_open & (days >= _day(first)) & (days <= _day(last))
    return days[keep]


class _Events:
    """Dated per-stock events sorted by (stock, day), looked up "as of day d"."""

    def __init__(self, stock: np.ndarray, day: np.ndarray, n_days: int):
        order = np.lexsort((day, stock))
        self.order = order
        self.stock = stock[order]
        self.day = day[order]
        # Keys stock * stride + day; a stride above every day index keeps stocks apart
        # even for the day index -1 ("before the first day").
        self._stride = n_days + 1
        self._keys = self.stock * self._stride + self.day
        starts = np.flatnonzero(np.r_[True, self.stock[1:] != self.stock[:-1]])
        self._first_of_stock = np.repeat(starts, np.diff(np.r_[starts, len(self.stock)]))

    def __len__(self) -> int:
        return len(self.stock)

    def last_position(self, stock: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Position of each stock's latest event on or before day, -1 where none."""
        position = np.searchsorted(self._keys, stock * self._stride + day, side="right") - 1
        found = position >= 0
        found[found] = self.stock[position[found]] == stock[found]
        return np.where(found, position, -1)

    def running_total(self, values: np.ndarray) -> np.ndarray:
        """Per-stock inclusive running sum of per-event values (in sorted event order)."""
        total = np.cumsum(values)
        return total - (total[self._first_of_stock] - values[self._first_of_stock])

    def total_through(self, running: np.ndarray, stock: np.ndarray, day: np.ndarray):
        position = self.last_position(stock, day)
        return np.where(position >= 0, running[np.maximum(position, 0)], 0.0)

    def values_between(self, values, stock, after, day) -> list[np.ndarray]:
        """Each stock's event values in (after, day], newest first.

        One array per step back, NaN once a stock has no more events in the window.
        """
        position = self.last_position(stock, day)
        steps = []
        while True:
            inside = position >= 0
            inside[inside] = (self.stock[position[inside]] == stock[inside]) & (
                self.day[position[inside]] > after[inside]
            )
            if not inside.any():
                return steps or [np.full(len(stock), np.nan)]
            steps.append(np.where(inside, values[np.maximum(position, 0)], np.nan))
            position = np.where(inside, position - 1, -1)


class _Universe:
    """The stocks and everything about them that does not depend on prices."""

    def __init__(self, seed: int, n_stocks: int, start: dt.date):
        rng = np.random.default_rng([seed, _UNIVERSE_STREAM])
        self.n_stocks = n_stocks
        self.trading_days = exchange_open_days(start, CALENDAR_LAST_DAY)
        self.trade_date_strings = _yyyymmdd(self.trading_days)
        n_days = len(self.trading_days)

        board, symbols = self._draw_boards(rng, n_stocks)
        order = np.argsort(self._codes(board, symbols))
        board = board[order]
        self.codes = self._codes(board, symbols[order]).astype(object)
        boards = [BOARDS[b] for b in board]
        is_main = np.array([b.market == MAIN_BOARD for b in boards])

        self._draw_lifecycle(rng, boards, start, n_days)
        self.is_st = is_main & (rng.random(n_stocks) < _ST_SHARE)
        self.limit = np.where(self.is_st, ST_LIMIT, [b.limit for b in boards])
        self.earlier_limit = np.where(
            self.is_st, ST_LIMIT, [b.earlier_limit or b.limit for b in boards]
        )
        self.limit_switch_day = np.array(
            [np.searchsorted(self.trading_days, _day(b.limit_since or start)) for b in boards]
        )
        self.table = self._describe(rng, boards)
        self._draw_trading_profile(rng, board)
        self._draw_fundamentals(rng, start)
        self._draw_suspensions(rng)
        self._draw_dividends(rng, start)

    @staticmethod
    def _codes(board: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        suffixes = np.array([b.code_suffix for b in BOARDS])[board]
        return np.char.add(np.char.add(np.char.zfill(symbols.astype(str), 6), "."), suffixes)

    @staticmethod
    def _draw_boards(rng: np.random.Generator, n_stocks: int) -> tuple[np.ndarray, np.ndarray]:
        """(board index, symbol number) per stock; each board gets its share, at least one."""
        counts = [max(1, round(b.weight * n_stocks)) for b in BOARDS[1:]]
        counts.insert(0, n_stocks - sum(counts))
        symbols = []
        for board, count in zip(BOARDS, counts, strict=True):
            pool = np.concatenate([np.arange(lo, hi + 1) for lo, hi in board.code_blocks])
            symbols.append(rng.choice(pool, size=count, replace=False))
        return np.repeat(np.arange(len(BOARDS)), counts), np.concatenate(symbols)

    def _draw_lifecycle(self, rng, boards: list[Board], start: dt.date, n_days: int) -> None:
        """List, delist and pause days (indices into trading_days; n_days means never)."""
        n = self.n_stocks
        board_first = np.array([_day(b.first_list_date) for b in boards])
        board_open_day = np.searchsorted(self.trading_days, board_first)
        new = (board_open_day > 0) | (rng.random(n) < _NEW_LISTING_SHARE)
        earliest = np.maximum(board_open_day, 1)
        span = np.maximum(n_days - earliest, 1)
        self.list_day = np.where(new, earliest + (rng.random(n) * span).astype(int), 0)
        # Stocks listed before the history: a weekday between the board's opening and a
        # month before the start.
        before = np.maximum((_day(start) - board_first).astype(int) - 30, 1)
        offset = (rng.random(n) * before).astype(int)
        early_date = np.busday_offset(board_first + offset, 0, roll="backward")
        list_date = np.where(
            new, self.trading_days[np.minimum(self.list_day, n_days - 1)], early_date
        )
        self.list_date = _yyyymmdd(list_date)

        self.delist_day = np.full(n, n_days)
        self.pause_day = np.full(n, n_days)
        candidates = np.flatnonzero(self.list_day < n_days - 2 * _DAYS_BEFORE_DELISTING)
        n_delisted = max(_MIN_DELISTED, round(_DELISTED_SHARE * n))
        n_paused = max(_MIN_PAUSED, round(_PAUSED_SHARE * n))
        chosen = rng.choice(candidates, min(n_delisted + n_paused, len(candidates)), replace=False)
        first = self.list_day[chosen] + _DAYS_BEFORE_DELISTING
        end_day = first + (rng.random(len(chosen)) * (n_days - first)).astype(int)
        self.delist_day[chosen[:n_delisted]] = end_day[:n_delisted]
        self.pause_day[chosen[n_delisted:]] = end_day[n_delisted:]
        # The day a stock stops trading for good (delisted or paused).
        self.last_day_bound = np.minimum(self.delist_day, self.pause_day)

    def _describe(self, rng, boards: list[Board]) -> pd.DataFrame:
        """stock_basic columns that do not change with the as-of day."""
        n = self.n_stocks
        endings = [(ind, end) for ind, ends in _INDUSTRY_NAME_ENDINGS.items() for end in ends]
        prefixes = [a + b for a in _NAME_CHARS for b in _NAME_CHARS if a != b]
        picks = rng.choice(len(prefixes) * len(endings), size=n, replace=False)
        st_marks = np.where(rng.random(n) < 0.5, "ST", "*ST")
        names, industries = [], []
        for i, pick in enumerate(picks):
            industry, ending = endings[pick % len(endings)]
            name = prefixes[pick // len(endings)] + ending
            names.append(st_marks[i] + name if self.is_st[i] else name)
            industries.append(industry)
        areas, weights = zip(*_AREAS, strict=True)
        area = rng.choice(np.array(areas, dtype=object), size=n, p=np.array(weights) / sum(weights))
        connect = rng.random(n) < _CONNECT_SHARE
        return pd.DataFrame(
            {
                "ts_code": self.codes,
                "symbol": [code[:6] for code in self.codes],
                "name": names,
                "area": area,
                "industry": industries,
                "market": [b.market for b in boards],
                "exchange": [b.exchange for b in boards],
                "list_date": self.list_date,
                "is_hs": np.where(connect, [b.connect_flag for b in boards], "N").astype(object),
            }
        )

    def _draw_trading_profile(self, rng, board: np.ndarray) -> None:
        n = self.n_stocks
        growth_board = np.array([BOARDS[b].limit >= 0.2 for b in board])
        self.issue_price_cents = _round_half_up(
            100 * np.clip(np.exp(rng.normal(np.log(12.0), 0.6, n)), 2.0, 300.0)
        )
        self.sigma = np.where(growth_board, 0.030, 0.022) * np.exp(rng.normal(0.0, 0.2, n))
        self.beta = rng.uniform(0.6, 1.4, n)
        self.base_turnover = np.clip(
            np.exp(rng.normal(np.log(1.0), 0.6, n)) * np.where(growth_board, 1.5, 1.0), 0.15, 8.0
        )
        is_new = self.list_day > 0
        self.total_share = np.round(
            np.clip(np.exp(rng.normal(np.log(40000), 1.0, n)), 3000, 3.5e6), 4
        )
        self.float_share = np.round(
            self.total_share
            * np.where(is_new, rng.uniform(0.15, 0.35, n), rng.uniform(0.55, 1.0, n)),
            4,
        )
        self.free_share = np.round(self.float_share * rng.uniform(0.4, 0.95, n), 4)
        self.initial_adj = np.where(is_new, 1.0, np.round(np.exp(rng.uniform(0.0, 2.5, n)), 3))

    def _draw_fundamentals(self, rng, start: dt.date) -> None:
        """Quarterly TTM profit, revenue and net assets (万元) and when each is published."""
        n = self.n_stocks
        years = range(start.year - 2, CALENDAR_LAST_DAY.year + 1)
        self.report_published = np.array(
            [
                _day(published)
                for year in years
                for published in (
                    dt.date(year, 4, 30),
                    dt.date(year, 8, 31),
                    dt.date(year, 10, 31),
                    dt.date(year + 1, 4, 30),
                )
            ]
        )
        self.annual_reports = np.arange(3, len(self.report_published), 4)
        n_reports = len(self.report_published)
        market_value = self.issue_price_cents / 100 * self.total_share
        growth = np.cumsum(rng.normal(0.012, 0.08, (n_reports, n)), axis=0)
        loss_prone = rng.random(n) < 0.12
        in_loss = rng.random((n_reports, n)) < np.where(loss_prone, 0.5, 0.03)
        profit = market_value / np.exp(rng.normal(np.log(28), 0.5, n)) * np.exp(growth)
        self.profit_ttm = np.where(in_loss, -0.4 * profit, profit)
        self.revenue_ttm = (
            market_value
            / np.exp(rng.normal(np.log(3.0), 0.6, n))
            * np.exp(np.cumsum(rng.normal(0.01, 0.04, (n_reports, n)), axis=0))
        )
        self.net_assets = (
            market_value
            / np.exp(rng.normal(np.log(2.5), 0.5, n))
            * np.exp(np.cumsum(rng.normal(0.01, 0.02, (n_reports, n)), axis=0))
        )

    def _draw_suspensions(self, rng) -> None:
        """Suspension spells (stock, first day, days) within each stock's trading life."""
        n = self.n_stocks
        counts = 1 + rng.poisson(_EXTRA_SPELLS_MEAN, n)
        stock = np.repeat(np.arange(n), counts)
        life = np.maximum(self.last_day_bound[stock] - self.list_day[stock] - 1, 0)
        first = self.list_day[stock] + 1 + (rng.random(len(stock)) * life).astype(int)
        long_spell = rng.random(len(stock)) < _LONG_SPELL_SHARE
        length = np.where(
            long_spell,
            rng.integers(*_LONG_SPELL_DAYS, size=len(stock)),
            rng.geometric(_SPELL_LENGTH_P, len(stock)),
        )
        keep = life > 0
        self.spell_stock, self.spell_first, self.spell_length = (
            stock[keep],
            first[keep],
            length[keep],
        )

    def _draw_dividends(self, rng, start: dt.date) -> None:
        """Ex-dividend days with their cash yield and bonus-share ratio."""
        n = self.n_stocks
        stocks, days, yields, bonuses = [], [], [], []
        for year in range(start.year, CALENDAR_LAST_DAY.year + 1):
            for first, last, chance, bonus_chance in _DIVIDEND_SEASONS:
                lo = np.searchsorted(self.trading_days, _day(dt.date(year, *first)))
                hi = np.searchsorted(self.trading_days, _day(dt.date(year, *last)), "right")
                pays = rng.random(n) < chance
                day = lo + (rng.random(n) * max(hi - lo, 1)).astype(int)
                cash_yield = rng.uniform(*_CASH_YIELD_RANGE, n)
                bonus = np.where(rng.random(n) < bonus_chance, rng.choice(_BONUS_RATIOS, n), 0.0)
                ok = (
                    pays
                    & (hi > lo)
                    & (day >= np.maximum(self.list_day + _DAYS_BEFORE_DIVIDEND, 1))
                    & (day < self.last_day_bound)
                )
                stocks.append(np.flatnonzero(ok))
                days.append(day[ok])
                yields.append(cash_yield[ok])
                bonuses.append(bonus[ok])
        self.events = _Events(np.concatenate(stocks), np.concatenate(days), len(self.trading_days))
        self.event_cash_yield = np.concatenate(yields)[self.events.order]
        self.event_bonus = np.concatenate(bonuses)[self.events.order]
        self.share_growth = self.events.running_total(np.log1p(self.event_bonus))

    def listed(self, day: np.ndarray, stock: np.ndarray) -> np.ndarray:
        return (self.list_day[stock] <= day) & (day < self.delist_day[stock])

    def trading_mask(self, horizon: int) -> np.ndarray:
        """(horizon, n_stocks): listed, not paused, not suspended."""
        n = self.n_stocks
        spell_change = np.zeros((horizon + 1, n), dtype=np.int32)
        first = np.minimum(self.spell_first, horizon)
        end = np.minimum(self.spell_first + self.spell_length, horizon)
        np.add.at(spell_change, (first, self.spell_stock), 1)
        np.add.at(spell_change, (end, self.spell_stock), -1)
        suspended = np.cumsum(spell_change, axis=0)[:horizon] > 0
        day = np.arange(horizon)[:, None]
        stock = np.arange(n)[None, :]
        return self.listed(day, stock) & (day < self.pause_day) & ~suspended

    def share_multiplier(self, stock: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Shares outstanding on day relative to the first day (bonus shares since)."""
        return np.exp(self.events.total_through(self.share_growth, stock, day))


class _Path:
    """Prices (cents), volumes (lots) and the trading mask over the first `horizon` days."""

    def __init__(self, universe: _Universe, seed: int, horizon: int):
        u = universe
        rng = np.random.default_rng([seed, _PATH_STREAM])
        n = u.n_stocks
        self.traded = u.trading_mask(horizon)
        self.open, self.high, self.low, self.close, self.pre_close, self.vol = (
            np.zeros((horizon, n), dtype=np.int32) for _ in range(6)
        )
        n_events = len(u.events)
        self.event_log_adj = np.zeros(n_events)
        self.event_cash_paid = np.zeros(n_events)  # 万元
        by_day = np.argsort(u.events.day, kind="stable")
        bounds = np.searchsorted(u.events.day[by_day], np.arange(horizon + 1))

        last_close = u.issue_price_cents.copy()
        anchor = np.log(last_close)
        log_adj = np.zeros(n)
        share_multiplier = np.ones(n)
        for d in range(horizon):
            events = by_day[bounds[d] : bounds[d + 1]]
            if events.size:
                # Ex-right: the previous close less the dividend, spread over the new shares.
                stock = u.events.stock[events]
                before = last_close[stock]
                cash = _round_half_up(before * u.event_cash_yield[events])
                ex_right = np.maximum(
                    _round_half_up((before - cash) / (1.0 + u.event_bonus[events])), 1.0
                )
                self.event_log_adj[events] = np.log(before / ex_right)
                self.event_cash_paid[events] = (
                    cash / 100 * u.total_share[stock] * share_multiplier[stock]
                )
                log_adj[stock] += self.event_log_adj[events]
                share_multiplier[stock] *= 1.0 + u.event_bonus[events]
                last_close[stock] = ex_right

            market = rng.normal(_MARKET_DRIFT, _MARKET_VOL)
            noise = rng.standard_normal((5, n))
            jump_draw = rng.random((2, n))
            limit = np.where(d < u.limit_switch_day, u.earlier_limit, u.limit)
            pre = last_close
            jump = np.where(
                jump_draw[0] < _JUMP_CHANCE,
                np.sign(noise[0])
                * limit
                * (_JUMP_SIZE[0] + (_JUMP_SIZE[1] - _JUMP_SIZE[0]) * jump_draw[1]),
                0.0,
            )
            drift = -_REVERSION * (np.log(pre) + log_adj - anchor)
            move = np.clip(u.beta * market + u.sigma * noise[0] + jump + drift, -limit, limit)
            up = _round_half_up(pre * (1 + limit))
            down = np.maximum(_round_half_up(pre * (1 - limit)), 1.0)
            close = np.clip(_round_half_up(pre * (1 + move)), down, up)
            gap = np.clip(0.3 * move + 0.4 * u.sigma * noise[1], -limit, limit)
            open_ = np.clip(_round_half_up(pre * (1 + gap)), down, up)
            top, bottom = np.maximum(open_, close), np.minimum(open_, close)
            high = np.clip(_round_half_up(top * (1 + 0.5 * u.sigma * np.abs(noise[2]))), top, up)
            low = np.clip(
                _round_half_up(bottom * (1 - 0.5 * u.sigma * np.abs(noise[3]))), down, bottom
            )
            turnover = np.clip(
                u.base_turnover
                * np.exp(_TURNOVER_NOISE * noise[4])
                * (1 + _TURNOVER_MOVE_GAIN * np.abs(close / pre - 1)),
                *_TURNOVER_RANGE,
            )
            self.pre_close[d] = pre
            self.open[d] = open_
            self.high[d] = high
            self.low[d] = low
            self.close[d] = close
            self.vol[d] = np.maximum(_round_half_up(turnover * u.float_share * share_multiplier), 1)
            last_close = np.where(self.traded[d], close, last_close)
        self.adj_growth = u.events.running_total(self.event_log_adj)


class SampleMarket:
    """A generated A-share market answering tushare queries, history cut at ``as_of``.

    trade_cal covers CALENDAR_FIRST_DAY..CALENDAR_LAST_DAY; a range reaching beyond gets
    the days inside it. Bars exist from the first open day on or after ``start_date``
    through the last open day on or before ``as_of``. Build through ``sample_market()`` to
    share one instance per configuration in a process.
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        n_stocks: int = DEFAULT_N_STOCKS,
        start_date: str = DEFAULT_START_DATE,
        as_of: str | dt.date | None = None,
    ):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed {seed!r} must be a non-negative integer")
        if not isinstance(n_stocks, int) or not MIN_N_STOCKS <= n_stocks <= MAX_N_STOCKS:
            raise ValueError(
                f"n_stocks {n_stocks!r} must be an integer from {MIN_N_STOCKS} to {MAX_N_STOCKS}"
            )
        start = parse_tushare_date(start_date, "start_date")
        if not CALENDAR_FIRST_DAY <= start <= LAST_START_DATE:
            raise ValueError(
                f"start_date {start_date!r} must be from {CALENDAR_FIRST_DAY:%Y%m%d}"
                f" to {LAST_START_DATE:%Y%m%d} (the calendar covers"
                f" {CALENDAR_FIRST_DAY:%Y%m%d}..{CALENDAR_LAST_DAY:%Y%m%d})"
            )
        self.seed, self.n_stocks, self.start_date = seed, n_stocks, start
        self.as_of = _as_of_date(as_of)
        self._universe = _universe(seed, n_stocks, start)
        self.horizon = int(np.searchsorted(self._universe.trading_days, _day(self.as_of), "right"))
        self._path = _Path(self._universe, seed, self.horizon)
        self._index_of_code = {code: i for i, code in enumerate(self._universe.codes)}
        self._handlers = {
            "stock_basic": (("ts_code", "list_status", "exchange"), self._stock_basic),
            "trade_cal": (("exchange", "start_date", "end_date", "is_open"), self._trade_cal),
            "daily": (_BAR_PARAMS, self._daily),
            "adj_factor": (_BAR_PARAMS, self._adj_factor),
            "daily_basic": (_BAR_PARAMS, self._daily_basic),
        }

    @property
    def last_trade_date(self) -> dt.date | None:
        """The newest day with bars: the last open day on or before ``as_of``."""
        if self.horizon == 0:
            return None
        return self._universe.trading_days[self.horizon - 1].astype(dt.date)

    def query(self, api_name: str, **params) -> pd.DataFrame:
        """Answer like tushare: columns API_FIELDS[api_name], wire-format values.

        ``None`` and empty-string params count as not given, as tushare treats them.
        """
        if api_name not in self._handlers:
            raise ValueError(
                f"api_name {api_name!r} is not served by the sample market;"
                f" it serves {sorted(self._handlers)}"
            )
        allowed, handler = self._handlers[api_name]
        given = {key: value for key, value in params.items() if value is not None and value != ""}
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise ValueError(f"{api_name} does not take {unknown}; it takes {list(allowed)}")
        frame = handler(given)
        return frame.loc[:, list(API_FIELDS[api_name])]

    def _stock_basic(self, given: dict) -> pd.DataFrame:
        u = self._universe
        as_of = self.as_of.strftime("%Y%m%d")
        # A lifecycle day index of len(trading_days) means "never": it maps to no date.
        future = np.append(u.trade_date_strings, "99999999")
        delist_date = future[u.delist_day]
        status = np.where(
            delist_date <= as_of, "D", np.where(future[u.pause_day] <= as_of, "P", "L")
        )
        frame = u.table.assign(
            list_status=status.astype(object),
            delist_date=np.where(status == "D", delist_date, None),
        )
        statuses = _comma_list(given.get("list_status", "L"))
        bad = [s for s in statuses if s not in LIST_STATUSES]
        if bad:
            raise ValueError(f"list_status {bad[0]!r} is not one of {list(LIST_STATUSES)}")
        keep = (frame["list_date"] <= as_of) & frame["list_status"].isin(statuses)
        if "ts_code" in given:
            keep &= frame["ts_code"].isin(_ts_codes(given["ts_code"]))
        if "exchange" in given:
            keep &= frame["exchange"] == _exchange(given["exchange"])
        return frame[keep].reset_index(drop=True)

    def _trade_cal(self, given: dict) -> pd.DataFrame:
        exchange = _exchange(given.get("exchange", "SSE"))
        first = parse_tushare_date(
            given.get("start_date", f"{CALENDAR_FIRST_DAY:%Y%m%d}"), "start_date"
        )
        last = parse_tushare_date(given.get("end_date", f"{CALENDAR_LAST_DAY:%Y%m%d}"), "end_date")
        _check_range(first, last)
        days, is_open, pretrade = _calendar()
        keep = (days >= _day(max(first, CALENDAR_FIRST_DAY))) & (days <= _day(last))
        if "is_open" in given:
            wanted = str(given["is_open"])
            if wanted not in ("0", "1"):
                raise ValueError(f"is_open {given['is_open']!r} must be 0 or 1")
            keep &= is_open == (wanted == "1")
        newest_first = np.flatnonzero(keep)[::-1]
        return pd.DataFrame(
            {
                "exchange": np.full(len(newest_first), exchange, dtype=object),
                "cal_date": _yyyymmdd(days[newest_first]),
                "is_open": is_open[newest_first].astype(np.int64),
                "pretrade_date": _yyyymmdd(pretrade[newest_first]),
            }
        )

    def _cells(self, given: dict, listed: bool) -> tuple[np.ndarray, np.ndarray]:
        """(day, stock) of every row, newest day first and by ts_code within a day.

        ``listed`` picks the adj_factor rows (every listed day); otherwise traded days only.
        """
        days = self._days(given)
        if "ts_code" in given:
            known = [
                self._index_of_code[c]
                for c in _ts_codes(given["ts_code"])
                if c in self._index_of_code
            ]
            stocks = np.unique(np.array(known, dtype=np.int64))
        else:
            stocks = np.arange(self.n_stocks)
        if listed:
            mask = self._universe.listed(days[:, None], stocks[None, :])
        else:
            mask = self._path.traded[days][:, stocks]
        row, column = np.nonzero(mask)
        return days[row], stocks[column]

    def _days(self, given: dict) -> np.ndarray:
        """Indices of the asked trading days within the history, newest first."""
        trading_days = self._universe.trading_days
        if "trade_date" in given:
            if "start_date" in given or "end_date" in given:
                raise ValueError("give trade_date or start_date/end_date, not both")
            first = last = parse_tushare_date(given["trade_date"], "trade_date")
        else:
            first = parse_tushare_date(
                given.get("start_date", f"{CALENDAR_FIRST_DAY:%Y%m%d}"), "start_date"
            )
            last = parse_tushare_date(
                given.get("end_date", f"{CALENDAR_LAST_DAY:%Y%m%d}"), "end_date"
            )
            _check_range(first, last)
        lo = np.searchsorted(trading_days, _day(first), "left")
        hi = min(np.searchsorted(trading_days, _day(last), "right"), self.horizon)
        return np.arange(hi - 1, lo - 1, -1, dtype=np.int64)

    def _keys(self, day: np.ndarray, stock: np.ndarray) -> dict:
        return {
            "ts_code": self._universe.codes[stock],
            "trade_date": self._universe.trade_date_strings[day],
        }

    def _daily(self, given: dict) -> pd.DataFrame:
        day, stock = self._cells(given, listed=False)
        p = self._path
        open_, high, low, close, pre_close = (
            a[day, stock].astype(np.float64) for a in (p.open, p.high, p.low, p.close, p.pre_close)
        )
        vol = p.vol[day, stock].astype(np.float64)
        average_price = (open_ + high + low + close) / 4 / 100
        return pd.DataFrame(
            {
                **self._keys(day, stock),
                "open": open_ / 100,
                "high": high / 100,
                "low": low / 100,
                "close": close / 100,
                "pre_close": pre_close / 100,
                "change": (close - pre_close) / 100,
                "pct_chg": np.round((close - pre_close) / pre_close * 100, 4),
                "vol": vol,
                # 千元: lots x 100 shares x price / 1000.
                "amount": np.round(vol * average_price / 10, 3),
            }
        )

    def _adj_factor(self, given: dict) -> pd.DataFrame:
        day, stock = self._cells(given, listed=True)
        return pd.DataFrame({**self._keys(day, stock), "adj_factor": self._adj(stock, day)})

    def _adj(self, stock: np.ndarray, day: np.ndarray) -> np.ndarray:
        u = self._universe
        growth = u.events.total_through(self._path.adj_growth, stock, day)
        return np.round(u.initial_adj[stock] * np.exp(growth), 3)

    def _daily_basic(self, given: dict) -> pd.DataFrame:
        u, p = self._universe, self._path
        day, stock = self._cells(given, listed=False)
        close = p.close[day, stock] / 100
        vol = p.vol[day, stock].astype(np.float64)
        multiplier = u.share_multiplier(stock, day)
        total_share = np.round(u.total_share[stock] * multiplier, 4)
        float_share = np.round(u.float_share[stock] * multiplier, 4)
        free_share = np.round(u.free_share[stock] * multiplier, 4)
        total_mv = close * total_share

        dates = u.trading_days[day]
        latest = np.searchsorted(u.report_published, dates, "right") - 1
        annual = u.annual_reports[
            np.searchsorted(u.report_published[u.annual_reports], dates, "right") - 1
        ]
        year_ago = np.searchsorted(u.trading_days, dates - np.timedelta64(365, "D"), "right") - 1
        # Cash paid (万元) in the trailing year, newest payment first.
        payments = u.events.values_between(p.event_cash_paid, stock, year_ago, day)
        last_paid = payments[0]
        paid_year = np.where(np.isnan(last_paid), np.nan, np.nansum(payments, axis=0))
        return pd.DataFrame(
            {
                **self._keys(day, stock),
                "close": close,
                # Turnover in %: lots x 100 / (万股 x 10000) x 100.
                "turnover_rate": np.round(vol / float_share, 4),
                "turnover_rate_f": np.round(vol / free_share, 4),
                "volume_ratio": np.round(vol / self._previous_volume(day, stock), 2),
                "pe": _ratio(total_mv, u.profit_ttm[annual, stock]),
                "pe_ttm": _ratio(total_mv, u.profit_ttm[latest, stock]),
                "pb": _ratio(total_mv, u.net_assets[latest, stock]),
                "ps": _ratio(total_mv, u.revenue_ttm[annual, stock]),
                "ps_ttm": _ratio(total_mv, u.revenue_ttm[latest, stock]),
                "dv_ratio": _ratio(last_paid * 100, total_mv),
                "dv_ttm": _ratio(paid_year * 100, total_mv),
                "total_share": total_share,
                "float_share": float_share,
                "free_share": free_share,
                "total_mv": np.round(total_mv, 4),
                "circ_mv": np.round(close * float_share, 4),
            }
        )

    def _previous_volume(self, day: np.ndarray, stock: np.ndarray) -> np.ndarray:
        """Mean volume of the stock's traded days among the 5 trading days before day."""
        total = np.zeros(len(day))
        count = np.zeros(len(day))
        for back in range(1, 6):
            earlier = np.maximum(day - back, 0)
            counted = (day - back >= 0) & self._path.traded[earlier, stock]
            total += np.where(counted, self._path.vol[earlier, stock], 0)
            count += counted
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)


_BAR_PARAMS = ("ts_code", "trade_date", "start_date", "end_date")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator to 4 dp; NaN where the denominator is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.round(numerator / denominator, 4), np.nan)


def _comma_list(value) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _ts_codes(value) -> list[str]:
    codes = _comma_list(value)
    for code in codes:
        if not _TS_CODE.match(code):
            raise ValueError(
                f"ts_code {code!r} is not a code like 600000.SH, 000001.SZ or 830799.BJ"
            )
    return codes


def _exchange(value) -> str:
    if value not in SERVED_EXCHANGES:
        raise ValueError(f"exchange {value!r} is not one of {list(SERVED_EXCHANGES)}")
    return value


def _check_range(first: dt.date, last: dt.date) -> None:
    if first > last:
        raise ValueError(f"start_date {first:%Y%m%d} is after end_date {last:%Y%m%d}")


def _as_of_date(as_of: str | dt.date | None) -> dt.date:
    if as_of is None:
        return market_today()
    if isinstance(as_of, dt.date):
        return as_of
    return parse_tushare_date(as_of, "as_of")


# Markets kept per process. A default market holds ~20 MB, a 5,000-stock one ~300 MB.
_CACHED_MARKETS = 6


@functools.lru_cache(maxsize=_CACHED_MARKETS)
def _universe(seed: int, n_stocks: int, start: dt.date) -> _Universe:
    return _Universe(seed, n_stocks, start)


_build_lock = threading.Lock()


@functools.lru_cache(maxsize=_CACHED_MARKETS)
def _cached_market(seed: int, n_stocks: int, start_date: str, as_of: dt.date) -> SampleMarket:
    return SampleMarket(seed, n_stocks, start_date, as_of)


def sample_market(
    seed: int = DEFAULT_SEED,
    n_stocks: int = DEFAULT_N_STOCKS,
    start_date: str = DEFAULT_START_DATE,
    as_of: str | dt.date | None = None,
) -> SampleMarket:
    """The market for this configuration, built once per process and shared.

    ``as_of`` (YYYYMMDD or a date) defaults to today in the market's time zone.
    """
    # One build at a time: concurrent callers wait for the first instead of building twice.
    with _build_lock:
        return _cached_market(seed, n_stocks, start_date, _as_of_date(as_of))
