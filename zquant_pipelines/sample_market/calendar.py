"""The offline sample market's exchange calendar: closures and open days.

Owns the days the exchanges close besides weekends (``EXCHANGE_CLOSURES``, written as data
from the State Council holiday notices), the span the calendar covers and, derived from
them, the open days and each day's previous open day. The calendar ends on 31 December of
the last year with closures, so next year's holiday notice is a data-only edit: add (or
correct) that year's rows and the calendar, trade_cal and the latest start date follow.
Any change of the open days changes the generated market (its draws follow the open days).
"""

import datetime as dt
import functools

import numpy as np
import pandas as pd

from zquant_pipelines.dates import parse_tushare_date

CALENDAR_FIRST_DAY = dt.date(2019, 1, 1)
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

# The calendar runs to the end of the last year with closures, so a year is added by its rows.
CALENDAR_LAST_DAY = dt.date(max(int(last[:4]) for _, _, last in EXCHANGE_CLOSURES), 12, 31)
# History must leave room for listings, delistings and dividends before the calendar ends.
LAST_START_DATE = dt.date(CALENDAR_LAST_DAY.year - 1, 12, 31)


def numpy_day(value: dt.date) -> np.datetime64:
    """A date as numpy's day (datetime64[D])."""
    return np.datetime64(value, "D")


def yyyymmdd(days: np.ndarray) -> np.ndarray:
    """Days as tushare's YYYYMMDD text (an object array)."""
    return pd.DatetimeIndex(days).strftime("%Y%m%d").to_numpy(dtype=object)


@functools.cache
def exchange_calendar() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(every day, is_open, previous open day) from the lookback day to CALENDAR_LAST_DAY."""
    days = np.arange(numpy_day(_CALENDAR_LOOKBACK_DAY), numpy_day(CALENDAR_LAST_DAY) + 1)
    closed_days = np.concatenate(
        [
            np.arange(
                numpy_day(parse_tushare_date(first, name)),
                numpy_day(parse_tushare_date(last, name)) + 1,
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
    days, is_open, _ = exchange_calendar()
    keep = is_open & (days >= numpy_day(first)) & (days <= numpy_day(last))
    return days[keep]
