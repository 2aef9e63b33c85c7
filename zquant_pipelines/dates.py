"""Dates as the market sees them: today in Asia/Shanghai, tushare's YYYYMMDD text.

Plain functions shared by every layer (sources, syncs, assets, actions).
"""

import datetime as dt
import re
from zoneinfo import ZoneInfo

from zquant_pipelines.constants import MARKET_TIMEZONE

TUSHARE_DATE = re.compile(r"^\d{8}$")
MARKET_ZONE = ZoneInfo(MARKET_TIMEZONE)


def market_today() -> dt.date:
    """Today's date on the exchanges' clock, whatever the host's timezone."""
    return dt.datetime.now(MARKET_ZONE).date()


def to_tushare_date(value: dt.date) -> str:
    return value.strftime("%Y%m%d")


def parse_tushare_date(value, field_name: str = "date") -> dt.date:
    """A YYYYMMDD string (or 8-digit int) as a date; bad input names the field and value."""
    text = str(value)
    try:
        if not TUSHARE_DATE.match(text):
            raise ValueError
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"{field_name} {value!r} is not a date in YYYYMMDD form") from None


def quarter_end(year: int, quarter: int) -> dt.date:
    """The last day of ``quarter`` (0..3) of ``year``: a report period."""
    month = 3 * (quarter + 1)
    return dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)


def is_quarter_end(day: dt.date) -> bool:
    return day == quarter_end(day.year, (day.month - 1) // 3)
