"""The market datasets: reference data and the whole market per trading day.

Units are tushare's (docs/datasets.md lists them): prices in CNY, volumes in lots (手),
amounts in thousand CNY (千元), shares in 10k shares (万股), market values in 10k CNY (万元).
Columns shared by several APIs are declared once here and reused.
"""

from zquant_pipelines.datasets.declaration import (
    Column,
    Dataset,
    Partitioning,
    SqlType,
    date,
    double,
    text,
)

# The checks of a trading-day table (assets/checks.py), with and without prices.
KEY_AND_COUNT_CHECKS = ("no_duplicate_keys", "row_count_vs_listed")
PRICE_CHECKS = (*KEY_AND_COUNT_CHECKS, "ohlc_sanity")

TS_CODE = text("ts_code", "tushare stock code, e.g. 000001.SZ")
TRADE_DATE = date("trade_date", "trading day")
EXCHANGE = text("exchange", "exchange (SSE, SZSE, BSE)")
OPEN = double("open", "open price, CNY, unadjusted")
HIGH = double("high", "high price, CNY, unadjusted")
LOW = double("low", "low price, CNY, unadjusted")
CLOSE = double("close", "close price, CNY, unadjusted")
PRE_CLOSE = double(
    "pre_close", "previous close, CNY, unadjusted (ex-rights adjusted by the exchange)"
)
CHANGE = double("change", "close - pre_close, CNY")
VOL = double("vol", "volume, lots (手, 100 shares)")
AMOUNT = double("amount", "turnover, thousand CNY (千元)")
PCT_CHG = double("pct_chg", "change over pre_close, %")
ADJ_FACTOR = double("adj_factor", "cumulative adjustment factor; hfq price = price * adj_factor")


def _adjusted_prices(price: Column) -> tuple[Column, Column]:
    """The hfq and qfq columns of an unadjusted price (stk_factor and stk_factor_pro)."""
    return (
        double(f"{price.name}_hfq", f"{price.name} price, CNY, back-adjusted (x adj_factor)"),
        double(
            f"{price.name}_qfq",
            f"{price.name} price, CNY, forward-adjusted as of trade_date (that day's snapshot)",
        ),
    )


# daily_basic's fields after the close (stk_factor_pro carries them too).
DAILY_INDICATORS = (
    double("turnover_rate", "turnover rate, % of total float shares"),
    double("turnover_rate_f", "turnover rate, % of free-float shares"),
    double("volume_ratio", "volume ratio (量比)"),
    double("pe", "price / earnings, NULL when losing money"),
    double("pe_ttm", "price / earnings TTM, NULL when losing money"),
    double("pb", "price / book"),
    double("ps", "price / sales"),
    double("ps_ttm", "price / sales TTM"),
    double("dv_ratio", "dividend yield, %"),
    double("dv_ttm", "dividend yield TTM, %"),
    double("total_share", "total shares, 10k shares (万股)"),
    double("float_share", "float shares, 10k shares (万股)"),
    double("free_share", "free-float shares, 10k shares (万股)"),
    double("total_mv", "total market value, 10k CNY (万元)"),
    double("circ_mv", "float market value, 10k CNY (万元)"),
)

STOCK_BASIC = Dataset(
    name="stock_basic",
    description="Every A-share stock, listed (L), delisted (D) and paused (P).",
    partitioning=Partitioning.REFERENCE,
    keys=("ts_code",),
    columns=(
        TS_CODE,
        text("symbol", "exchange ticker without suffix"),
        text("name", "short name"),
        text("area", "region"),
        text("industry", "industry"),
        text("market", "board (主板, 创业板, 科创板, 北交所, ...)"),
        EXCHANGE,
        text("list_status", "L listed, D delisted, P paused"),
        date("list_date", "listing date"),
        date("delist_date", "delisting date, NULL while listed"),
        text("is_hs", "Stock Connect: N no, H Shanghai, S Shenzhen"),
    ),
)

TRADE_CAL = Dataset(
    name="trade_cal",
    description="SSE and SZSE trading calendars, from the first partition to a year ahead.",
    partitioning=Partitioning.REFERENCE,
    keys=("exchange", "cal_date"),
    columns=(
        EXCHANGE,
        date("cal_date", "calendar day"),
        Column("is_open", SqlType.SMALLINT, "1 trading day, 0 closed"),
        date("pretrade_date", "previous trading day"),
    ),
)

DAILY = Dataset(
    name="daily",
    description="Unadjusted daily bars: prices in CNY, vol in lots (手), amount in thousand"
    " CNY (千元). No row on a day the stock was suspended.",
    partitioning=Partitioning.TRADING_DAY,
    keys=("ts_code", "trade_date"),
    columns=(
        TS_CODE,
        TRADE_DATE,
        OPEN,
        HIGH,
        LOW,
        CLOSE,
        PRE_CLOSE,
        CHANGE,
        PCT_CHG,
        VOL,
        AMOUNT,
    ),
    published="16:00",
    # No row for a suspended stock (rarely above a few percent of the market since 2016;
    # in July 2015 half of it was suspended, below this share).
    min_listed_share=0.8,
    checks=PRICE_CHECKS,
)

ADJ_FACTOR_DATASET = Dataset(
    name="adj_factor",
    description="Adjustment factors: hfq price = price x adj_factor. Rows exist on"
    " suspended days too.",
    partitioning=Partitioning.TRADING_DAY,
    keys=("ts_code", "trade_date"),
    columns=(TS_CODE, TRADE_DATE, ADJ_FACTOR),
    # Documented as stored 09:15-09:20 before the open; some stocks' rows have come as late
    # as 17:00 (waditu/tushare#1720), which the not-published-yet rule catches.
    published="09:20",
    # A row for every listed stock, suspended or not.
    min_listed_share=0.95,
    checks=KEY_AND_COUNT_CHECKS,
)

DAILY_BASIC = Dataset(
    name="daily_basic",
    description="Daily indicators: turnover_rate in %, shares in 10k shares (万股), market"
    " values in 10k CNY (万元).",
    partitioning=Partitioning.TRADING_DAY,
    keys=("ts_code", "trade_date"),
    columns=(
        TS_CODE,
        TRADE_DATE,
        CLOSE,
        *DAILY_INDICATORS,
    ),
    published="17:00",
    min_listed_share=0.8,
    checks=KEY_AND_COUNT_CHECKS,
)

STK_FACTOR = Dataset(
    name="stk_factor",
    description="Daily technical factors: the bar, hfq prices (price x adj_factor), qfq prices"
    " as of the day, and MACD(12, 26, 9), KDJ(9, 3, 3), RSI(6, 12, 24), BOLL(20, 2) and"
    " CCI(14) on qfq prices. No row on a day the stock was suspended.",
    partitioning=Partitioning.TRADING_DAY,
    keys=("ts_code", "trade_date"),
    columns=(
        TS_CODE,
        TRADE_DATE,
        CLOSE,
        OPEN,
        HIGH,
        LOW,
        PRE_CLOSE,
        CHANGE,
        double("pct_change", "change over pre_close, %"),
        VOL,
        AMOUNT,
        ADJ_FACTOR,
        *(
            column
            for price in (OPEN, CLOSE, HIGH, LOW, PRE_CLOSE)
            for column in _adjusted_prices(price)
        ),
        double("macd_dif", "MACD DIF (EMA12 - EMA26) of qfq close, CNY"),
        double("macd_dea", "MACD DEA (EMA9 of DIF), CNY"),
        double("macd", "MACD histogram 2 x (DIF - DEA), CNY"),
        double("kdj_k", "KDJ K, 0-100"),
        double("kdj_d", "KDJ D, 0-100"),
        double("kdj_j", "KDJ J = 3K - 2D"),
        double("rsi_6", "RSI over 6 days, 0-100"),
        double("rsi_12", "RSI over 12 days, 0-100"),
        double("rsi_24", "RSI over 24 days, 0-100"),
        double("boll_upper", "Bollinger upper band (20 days, 2 sd) of qfq close, CNY"),
        double("boll_mid", "Bollinger middle band: 20-day mean of qfq close, CNY"),
        double("boll_lower", "Bollinger lower band (20 days, 2 sd) of qfq close, CNY"),
        double("cci", "commodity channel index over 14 days"),
    ),
    row_limit=10000,
    # tushare's page names no time; zquant v0.4 takes the day before until 18:00.
    published="18:00",
    min_listed_share=0.8,
    checks=PRICE_CHECKS,
)

# stk_factor_pro's moving-average windows (days).
_WINDOWS = (5, 10, 20, 30, 60, 90, 250)
# tushare's page (doc_id=328) as stored here ends at float_share; the later names and the
# parameters are those of transcriptions of it, which agree with each other and with its
# siblings fund_factor_pro (doc_id=359) and cb_factor_pro (doc_id=392).
# stk_factor_pro's indicator families with their parameters as tushare's pages give them,
# by the name under which each appears with the adjustment (sample_market/technical.py's
# pro_name): (column stem, its window if the window follows the adjustment, meaning).
_PRO_FAMILIES = (
    *(("ma", window, f"simple moving average of close over {window} days") for window in _WINDOWS),
    *(("ema", window, f"exponential moving average of close, N={window}") for window in _WINDOWS),
    ("macd_dif", None, "MACD DIF (EMA12 - EMA26 of close)"),
    ("macd_dea", None, "MACD DEA (EMA9 of DIF)"),
    ("macd", None, "MACD histogram 2 x (DIF - DEA)"),
    ("kdj_k", None, "KDJ K (N=9, M1=3, M2=3), 0-100"),
    ("kdj_d", None, "KDJ D, 0-100"),
    ("kdj", None, "KDJ J = 3K - 2D"),
    *(("rsi", window, f"RSI of close over {window} days, 0-100") for window in (6, 12, 24)),
    ("boll_upper", None, "Bollinger upper band (close, N=20, P=2)"),
    ("boll_mid", None, "Bollinger middle band: 20-day mean of close"),
    ("boll_lower", None, "Bollinger lower band (close, N=20, P=2)"),
    ("cci", None, "commodity channel index (N=14)"),
    ("atr", None, "average true range (N=20)"),
)
_ADJUSTED = (
    ("bfq", "unadjusted prices"),
    ("hfq", "hfq prices"),
    ("qfq", "qfq prices as of trade_date"),
)

STK_FACTOR_PRO = Dataset(
    name="stk_factor_pro",
    description="Daily technical factors, professional edition (a documented subset): the bar"
    " with hfq and qfq prices, daily_basic's fields, adj_factor, and MA and EMA (5, 10, 20, 30,"
    " 60, 90, 250), MACD(12, 26, 9), KDJ(9, 3, 3), RSI(6, 12, 24), BOLL(20, 2), CCI(14) and"
    " ATR(20) each on unadjusted (_bfq), hfq (_hfq) and qfq (_qfq) prices. Not declared: its"
    " other families (ASI, BBI, BIAS, BRAR, CR, DFMA, DMI, DPO, EMV, EXPMA, KTN, MASS, MFI, MTM,"
    " OBV, PSY, ROC, TAQ, TRIX, VR, WR, XSII, up/down/top/low days). No row on a day the stock"
    " was suspended. Verified on tushare's page: the fields through float_share and the row"
    " limit; free_share to circ_mv, adj_factor and the indicators' names and parameters come"
    " from transcriptions of it (the stored page is cut off).",
    partitioning=Partitioning.TRADING_DAY,
    keys=("ts_code", "trade_date"),
    columns=(
        TS_CODE,
        TRADE_DATE,
        *(
            column
            for price in (OPEN, HIGH, LOW, CLOSE)
            for column in (price, *_adjusted_prices(price))
        ),
        PRE_CLOSE,
        CHANGE,
        PCT_CHG,
        VOL,
        AMOUNT,
        *DAILY_INDICATORS,
        ADJ_FACTOR,
        *(
            double(
                f"{stem}_{adjustment}_{window}" if window else f"{stem}_{adjustment}",
                f"{meaning}, on {prices}",
            )
            for stem, window, meaning in _PRO_FAMILIES
            for adjustment, prices in _ADJUSTED
        ),
    ),
    row_limit=10000,
    # tushare's page names no time; zquant v0.4 takes the day before until 18:00.
    published="18:00",
    min_listed_share=0.8,
    checks=PRICE_CHECKS,
)

MARKET_DATASETS = (
    STOCK_BASIC,
    TRADE_CAL,
    DAILY,
    ADJ_FACTOR_DATASET,
    DAILY_BASIC,
    STK_FACTOR,
    STK_FACTOR_PRO,
)
