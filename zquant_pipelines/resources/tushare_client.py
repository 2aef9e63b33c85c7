"""The tushare market source: tushare's wire protocol, as the ``tushare`` SDK speaks it,
plus what the SDK lacks.

The SDK's ``DataApi.query`` (tushare 1.4.29) posts one request and turns the reply into a
frame with ``pd.DataFrame(items, columns=fields)``. On the way it hides three things: the
HTTP status (``if res:`` returns an empty frame on any 4xx/5xx), tushare's numeric code
(a bare ``Exception(msg)``), and a row with fewer values than fields (pandas pads it with
None, so a short row's missing vol/amount read as genuine NULLs). Only the raw reply
shows them, so ``TushareClient`` sends the SDK's exact request itself (same URL, body and
``ts_type_name``; the default endpoint is the SDK's) and builds the frame the SDK's way
after checking the reply. It adds:

- a per-API calls-per-minute budget shared by every process on the machine (files under
  ``rate_limit_dir``) or, with ``rate_limit_url``, by every machine (Redis), and a shared
  cool-down of one window after tushare reports the budget exhausted (``rate_limit``);
- error classes from the HTTP status and the reply's message;
- retry with exponential back-off and full jitter for rate-limit and transport errors only;
- refusal of a reply whose fields differ from the requested ones or with a row holding
  fewer or more values than fields (``TushareReplyError``);
- paging with ``offset``/``limit`` while a reply holds exactly the row limit;
- exactly ``constants.REQUEST_FIELDS[api_name]`` as columns, ``trade_cal.is_open`` as int.

The token never appears in errors or logs: every message built from foreign text is
scrubbed, and foreign exceptions are not chained (their text could carry it).
"""

import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from pydantic import Field, PrivateAttr
from tushare.pro.client import DataApi

from zquant_pipelines.constants import (
    API_ROW_LIMITS,
    DEFAULT_CALLS_PER_MINUTE,
    DEFAULT_DATA_DIR,
    DEFAULT_ROW_LIMIT,
    ENV_DATA_DIR,
    REQUEST_FIELDS,
    TUSHARE_NO_PERMISSION_TEXT,
)
from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.resources.rate_limit import (
    DEFAULT_KEY_PREFIX,
    RateLimiter,
    rate_limiter_for,
)

logger = logging.getLogger("zquant_pipelines.tushare")

_RATE_LIMIT_TEXT = re.compile(r"每(分钟|小时|天)最多访问该接口")
_BAD_TOKEN_TEXT = "token不对"
# Params the client owns: it pages itself and always asks for REQUEST_FIELDS.
_RESERVED_PARAMS = ("offset", "limit", "fields")
_REDACTED = "***"
# The SDK's endpoint (a class attribute, name-mangled): the default of ``api_url``.
SDK_HTTP_URL: str = DataApi._DataApi__http_url


class TushareError(Exception):
    """A tushare call failed; the message names the API and params, never the token."""


class TushareRateLimitError(TushareError):
    """Tushare refused the call: per-minute (or per-hour/day) budget exhausted. Retryable."""


class TusharePermissionError(TushareError):
    """The account has no access to the API. Not retryable."""


class TushareTokenError(TushareError):
    """Tushare rejected the token. Not retryable."""


class TushareTransportError(TushareError):
    """No usable reply: timeout, connection error, HTTP error status, not JSON. Retryable."""


class TushareReplyError(TushareError):
    """A reply that does not hold what was asked: other fields than requested, or a row
    with fewer or more values than fields. Not retried within a query (the same request
    would get the same reply); a task's retry policy may try again later."""


class TushareSettingsError(TushareError, ValueError):
    """A setting or query argument is invalid: no call was made. Not retryable."""


_RETRYABLE = (TushareRateLimitError, TushareTransportError)


class TushareClient(MarketSource):
    """Tushare Pro through the real SDK, with rate limit, retries, paging and error classes.

    ``calls_per_minute`` (per API, overridden by ``api_calls_per_minute``) is counted over
    ``rate_limit_window_seconds``, one minute unless scaled down for tests. ``api_row_limits``
    overrides ``constants.API_ROW_LIMITS``. ``rate_limit_url`` (a Redis URL) shares the budget
    with every machine using that server, under keys starting ``rate_limit_key_prefix``;
    without it, ``rate_limit_dir`` (default ``$ZQUANT_DATA_DIR/ratelimit``, ``data/ratelimit``)
    shares it with the processes using that directory.
    """

    token: str = Field(repr=False, description="Tushare Pro token (TUSHARE_TOKEN).")
    # Out of repr too: gateway URLs may carry credentials.
    api_url: str | None = Field(
        default=None,
        repr=False,
        description="Endpoint override (TUSHARE_API_URL); None keeps the SDK's.",
    )
    timeout_seconds: float = 30
    calls_per_minute: int = DEFAULT_CALLS_PER_MINUTE
    api_calls_per_minute: dict[str, int] = {}
    rate_limit_window_seconds: float = 60.0
    api_row_limits: dict[str, int] = {}
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 65.0
    rate_limit_dir: str | None = None
    # Out of repr: the URL may carry the Redis password.
    rate_limit_url: str | None = Field(
        default=None,
        repr=False,
        description="Redis URL of the budget shared across machines (ZQUANT_RATE_LIMIT_URL); "
        "None keeps it in files under rate_limit_dir.",
    )
    # Deployments sharing one Redis with different tushare accounts need separate budgets.
    rate_limit_key_prefix: str = DEFAULT_KEY_PREFIX

    _calls_made: int = PrivateAttr(default=0)
    # Built on first use and kept, so a Redis budget reuses its connection pool.
    _limiter: RateLimiter | None = PrivateAttr(default=None)

    @property
    def calls_made(self) -> int:
        """HTTP requests this resource has sent (retries and pages included)."""
        return self._calls_made

    def query(self, api_name: str, **params: Any) -> pd.DataFrame:
        """Every row of ``api_name`` for ``params``, with exactly ``REQUEST_FIELDS[api_name]``."""
        self._check_settings()
        if api_name not in REQUEST_FIELDS:
            raise TushareSettingsError(
                f"api_name {api_name!r} is not one of {sorted(REQUEST_FIELDS)}"
            )
        reserved = sorted(set(params) & set(_RESERVED_PARAMS))
        if reserved:
            raise TushareSettingsError(
                f"params {reserved} are set by TushareClient itself; got {params!r}"
            )
        fields = REQUEST_FIELDS[api_name]
        row_limit = self.api_row_limits.get(
            api_name, API_ROW_LIMITS.get(api_name, DEFAULT_ROW_LIMIT)
        )
        pages = []
        offset = 0
        while True:
            page = self._call_with_retries(
                api_name, ",".join(fields), {**params, "offset": offset, "limit": row_limit}
            )
            if len(page) or not pages:  # an empty last page would only blur concat's dtypes
                pages.append(page)
            # tushare truncates silently: a full page may have more behind it.
            if len(page) < row_limit:
                break
            offset += row_limit
        frame = pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]
        frame = frame[list(fields)].reset_index(drop=True)
        if api_name == "trade_cal":
            # tushare sends is_open as "0"/"1" or 0/1 depending on the day.
            frame["is_open"] = pd.to_numeric(frame["is_open"], errors="raise").astype(int)
        return frame

    def _call_with_retries(self, api_name: str, fields: str, params: dict) -> pd.DataFrame:
        limiter = self._rate_limiter()
        calls_per_minute = self.api_calls_per_minute.get(api_name, self.calls_per_minute)
        attempt = 1
        while True:
            limiter.acquire(api_name, calls_per_minute, self.rate_limit_window_seconds)
            logger.debug("tushare %s %r: attempt %d", api_name, params, attempt)
            try:
                return self._call_once(api_name, fields, params)
            except _RETRYABLE as error:
                if attempt >= self.max_attempts:
                    logger.error(
                        "tushare %s %r: giving up after %d attempts", api_name, params, attempt
                    )
                    raise type(error)(f"{error} (gave up after {attempt} attempts)") from None
                if isinstance(error, TushareRateLimitError):
                    # Tushare's window is not visible to us: assume it frees a whole window on.
                    limiter.cool_down(api_name, self.rate_limit_window_seconds)
                delay = self._backoff_seconds(attempt)
                logger.warning(
                    "attempt %d of %d failed: %s; retrying in %.2fs",
                    attempt,
                    self.max_attempts,
                    error,
                    delay,
                )
                time.sleep(delay)
            attempt += 1

    def _call_once(self, api_name: str, fields: str, params: dict) -> pd.DataFrame:
        """One request as the SDK sends it; the reply checked before it becomes a frame."""
        endpoint = (self.api_url or SDK_HTTP_URL).rstrip("/")
        body = {
            "api_name": api_name,
            "token": self.token,
            "params": {**params, "ts_type_name": endpoint},
            "fields": fields,
        }
        where = f"tushare {api_name} {params!r}"
        self._calls_made += 1
        try:
            response = requests.post(
                f"{endpoint}/{api_name}", json=body, timeout=self.timeout_seconds
            )
        except requests.RequestException as error:
            raise TushareTransportError(
                f"{where}: {type(error).__name__}: {self._scrub(str(error))}"
            ) from None
        if not response.ok:
            status = f"HTTP {response.status_code} {self._scrub(response.reason or '')}".strip()
            if response.status_code == 429:
                raise TushareRateLimitError(f"{where}: {status}")
            raise TushareTransportError(f"{where}: {status}")
        try:
            reply = json.loads(response.text)
        except ValueError as error:
            raise TushareTransportError(
                f"{where}: unreadable reply: {self._scrub(str(error))}"
            ) from None
        if not isinstance(reply, dict):
            raise TushareTransportError(f"{where}: the reply is not a JSON object")
        if reply.get("code") != 0:
            raise self._classify(where, str(reply.get("msg")))
        return self._frame_of(where, fields.split(","), reply.get("data"))

    def _frame_of(self, where: str, requested: list[str], data: Any) -> pd.DataFrame:
        """The reply's rows as the SDK builds them, once every row has one value per field."""
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key), list) for key in ("fields", "items")
        ):
            raise TushareReplyError(f"{where}: the reply has no data.fields and data.items")
        fields, items = data["fields"], data["items"]
        if len(fields) != len(requested) or set(fields) != set(requested):
            raise TushareReplyError(
                f"{where}: reply fields {self._scrub(str(fields))} do not match the requested "
                f"{requested}"
            )
        width = len(fields)
        for index, row in enumerate(items):
            if not isinstance(row, list) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
                raise TushareReplyError(
                    f"{where}: row {index} has {got}, expected {width} (one per field: "
                    f"{', '.join(fields)})"
                )
        return pd.DataFrame(items, columns=fields)

    def _classify(self, where: str, message: str) -> TushareError:
        text = f"{where}: {self._scrub(message)}"
        if _RATE_LIMIT_TEXT.search(message):
            return TushareRateLimitError(text)
        if TUSHARE_NO_PERMISSION_TEXT in message:
            return TusharePermissionError(text)
        if _BAD_TOKEN_TEXT in message:
            return TushareTokenError(text)
        return TushareError(text)

    def _backoff_seconds(self, attempt: int) -> float:
        # Full jitter: parallel processes hit by the same failure do not retry in lockstep.
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, _REDACTED) if self.token else text

    def _rate_limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = rate_limiter_for(
                self.rate_limit_url, self._rate_limit_dir(), self.rate_limit_key_prefix
            )
        return self._limiter

    def _rate_limit_dir(self) -> Path:
        if self.rate_limit_dir:
            return Path(self.rate_limit_dir)
        return Path(os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR) / "ratelimit"

    def _check_settings(self) -> None:
        if not self.token:
            raise TushareSettingsError("TushareClient.token is empty: set TUSHARE_TOKEN")
        positive = {
            "timeout_seconds": self.timeout_seconds,
            "calls_per_minute": self.calls_per_minute,
            "rate_limit_window_seconds": self.rate_limit_window_seconds,
            "max_attempts": self.max_attempts,
            **{f"api_calls_per_minute[{k!r}]": v for k, v in self.api_calls_per_minute.items()},
            **{f"api_row_limits[{k!r}]": v for k, v in self.api_row_limits.items()},
        }
        for name, value in positive.items():
            if not value > 0:
                raise TushareSettingsError(f"TushareClient.{name} must be > 0, got {value!r}")
        for name in ("backoff_base_seconds", "backoff_max_seconds"):
            value = getattr(self, name)
            if value < 0:
                raise TushareSettingsError(f"TushareClient.{name} must be >= 0, got {value!r}")
