"""The offline sample market's stocks: all about them that does not depend on the price path.

Owns the listing boards (code blocks, price limits), names, industries and areas, and the
draws of each stock's listing, delisting, pause, suspension spells, shares, fundamentals
and dividends with bonus shares, over the open days from the start date to the calendar's
end.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from zquant_pipelines.sample_market.calendar import (
    CALENDAR_LAST_DAY,
    exchange_open_days,
    numpy_day,
    yyyymmdd,
)

MIN_N_STOCKS = 10
# The code blocks below hold enough symbols for this many stocks (tushare lists ~5,400).
MAX_N_STOCKS = 6000


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

# Independent random streams of one seed: the universe's draws and the price path's.
UNIVERSE_STREAM, PATH_STREAM = 1, 2


def round_half_up(values: np.ndarray) -> np.ndarray:
    """Exchange rounding of prices held in cents (limit prices round half up)."""
    return np.floor(values + 0.5)


class DatedEvents:
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


class Universe:
    """The stocks and everything about them that does not depend on prices."""

    def __init__(self, seed: int, n_stocks: int, start: dt.date):
        rng = np.random.default_rng([seed, UNIVERSE_STREAM])
        self.n_stocks = n_stocks
        self.trading_days = exchange_open_days(start, CALENDAR_LAST_DAY)
        self.trade_date_strings = yyyymmdd(self.trading_days)
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
            [np.searchsorted(self.trading_days, numpy_day(b.limit_since or start)) for b in boards]
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
        board_first = np.array([numpy_day(b.first_list_date) for b in boards])
        board_open_day = np.searchsorted(self.trading_days, board_first)
        new = (board_open_day > 0) | (rng.random(n) < _NEW_LISTING_SHARE)
        earliest = np.maximum(board_open_day, 1)
        span = np.maximum(n_days - earliest, 1)
        self.list_day = np.where(new, earliest + (rng.random(n) * span).astype(int), 0)
        # Stocks listed before the history: a weekday between the board's opening and a
        # month before the start.
        before = np.maximum((numpy_day(start) - board_first).astype(int) - 30, 1)
        offset = (rng.random(n) * before).astype(int)
        early_date = np.busday_offset(board_first + offset, 0, roll="backward")
        list_date = np.where(
            new, self.trading_days[np.minimum(self.list_day, n_days - 1)], early_date
        )
        self.list_date = yyyymmdd(list_date)

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
        self.issue_price_cents = round_half_up(
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
                numpy_day(published)
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
                lo = np.searchsorted(self.trading_days, numpy_day(dt.date(year, *first)))
                hi = np.searchsorted(self.trading_days, numpy_day(dt.date(year, *last)), "right")
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
        self.events = DatedEvents(
            np.concatenate(stocks), np.concatenate(days), len(self.trading_days)
        )
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
