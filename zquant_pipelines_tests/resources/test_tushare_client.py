"""TushareClient over HTTP against the local wire server, which the real tushare SDK talks
to as well: the client sends the SDK's request and reads the reply the SDK's way."""

import logging
import multiprocessing
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
import tushare

from zquant_pipelines.constants import API_FIELDS
from zquant_pipelines.resources.rate_limit import RateLimitStoreError, RedisRateLimiter
from zquant_pipelines.resources.tushare_client import (
    TushareClient,
    TushareError,
    TusharePermissionError,
    TushareRateLimitError,
    TushareReplyError,
    TushareTokenError,
    TushareTransportError,
)
from zquant_pipelines_tests.support.tushare_wire_server import (
    DEFAULT_TOKEN,
    RATE_LIMIT_MESSAGE,
    TushareWireServer,
)

TRADE_DATE = "20260227"
ROW_LIMIT = 50


class SmallMarket:
    """``stocks`` stocks' daily bars for any trade_date, and a calendar whose is_open is text.

    The first stock has no pre_close (NaN), to check NaN travels as null.
    """

    def __init__(self, stocks: int = 5):
        self.stocks = stocks

    def query(self, api_name: str, **params) -> pd.DataFrame:
        if api_name == "daily":
            return self.daily(params["trade_date"])
        if api_name == "trade_cal":
            return pd.DataFrame(
                {
                    "exchange": ["SSE"] * 3,
                    "cal_date": ["20260302", "20260301", "20260227"],
                    "is_open": ["1", "0", "1"],
                    "pretrade_date": ["20260227", "20260227", "20260226"],
                }
            )
        raise ValueError(f"SmallMarket has no {api_name!r}")

    def daily(self, trade_date: str) -> pd.DataFrame:
        index = np.arange(self.stocks)
        close = 10.0 + index * 0.5
        frame = pd.DataFrame(
            {
                "ts_code": [f"{600000 + i:06d}.SH" for i in index],
                "trade_date": trade_date,
                "open": close - 0.1,
                "high": close + 0.2,
                "low": close - 0.3,
                "close": close,
                "pre_close": close - 0.05,
                "change": 0.05,
                "pct_chg": 0.05 / (close - 0.05) * 100,
                "vol": 1000.0 + index,
                "amount": 5000.0 + index * 3,
            }
        )
        frame.loc[0, "pre_close"] = np.nan
        return frame


class EchoingMarket:
    """A backend whose error text carries the token, as a careless gateway's might."""

    def query(self, api_name: str, **params) -> pd.DataFrame:
        raise ValueError(f"request with token {DEFAULT_TOKEN} refused")


def make_client(server: TushareWireServer, tmp_path, **settings) -> TushareClient:
    defaults = {
        "token": server.token,
        "api_url": server.url,
        "timeout_seconds": 5.0,
        "calls_per_minute": 1000,
        "rate_limit_window_seconds": 1.0,
        "max_attempts": 3,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "rate_limit_dir": str(tmp_path / "ratelimit"),
    }
    return TushareClient(**{**defaults, **settings})


@pytest.fixture
def market():
    return SmallMarket()


@pytest.fixture
def server(tushare_server_factory, market):
    return tushare_server_factory(market, row_limit=ROW_LIMIT)


def outcomes(server: TushareWireServer) -> list[str]:
    return [call.outcome for call in server.calls]


def test_query_returns_served_rows_with_api_fields(server, market, tmp_path):
    client = make_client(server, tmp_path)

    frame = client.query("daily", trade_date=TRADE_DATE)

    assert list(frame.columns) == list(API_FIELDS["daily"])
    pd.testing.assert_frame_equal(frame, market.daily(TRADE_DATE)[list(API_FIELDS["daily"])])
    assert pd.isna(frame.loc[0, "pre_close"])
    [call] = server.calls
    assert call.params == {"trade_date": TRADE_DATE, "offset": 0, "limit": 6000}
    assert call.fields == ",".join(API_FIELDS["daily"])
    assert client.calls_made == 1


def test_trade_cal_is_open_comes_back_as_int(server, tmp_path):
    frame = make_client(server, tmp_path).query("trade_cal", exchange="SSE")

    assert frame["is_open"].tolist() == [1, 0, 1]
    assert pd.api.types.is_integer_dtype(frame["is_open"])


@pytest.mark.parametrize(("stocks", "offsets"), [(100, [0, 50, 100]), (120, [0, 50, 100])])
def test_full_pages_are_followed_until_a_short_one(
    tushare_server_factory, tmp_path, stocks, offsets
):
    market = SmallMarket(stocks=stocks)
    server = tushare_server_factory(market, row_limit=ROW_LIMIT)
    client = make_client(server, tmp_path, api_row_limits={"daily": ROW_LIMIT})

    frame = client.query("daily", trade_date=TRADE_DATE)

    assert len(frame) == stocks
    assert frame["ts_code"].tolist() == market.daily(TRADE_DATE)["ts_code"].tolist()
    assert [call.params["offset"] for call in server.calls_to("daily")] == offsets
    assert client.calls_made == len(offsets)


def test_rate_limit_message_is_retried_after_the_window(server, tmp_path):
    window = 0.5
    server.limit_rate(2, window, api_name="daily")
    client = make_client(server, tmp_path, rate_limit_window_seconds=window)

    frames = [client.query("daily", trade_date=TRADE_DATE) for _ in range(3)]

    assert all(len(frame) == 5 for frame in frames)
    assert outcomes(server) == ["ok", "ok", "rate_limited", "ok"]
    rejected = server.calls_to("daily", "rate_limited")[0]
    retried = server.calls_to("daily", "ok")[-1]
    assert retried.received_at - rejected.received_at >= window


def test_rate_limit_error_carries_tushares_message(server, tmp_path):
    server.limit_rate(1, 60.0)
    client = make_client(server, tmp_path, max_attempts=1)
    client.query("daily", trade_date=TRADE_DATE)

    with pytest.raises(TushareRateLimitError) as raised:
        client.query("daily", trade_date=TRADE_DATE)

    assert RATE_LIMIT_MESSAGE.format(calls=1) in str(raised.value)
    assert "daily" in str(raised.value) and TRADE_DATE in str(raised.value)


def test_http_500_is_retried_then_succeeds(server, tmp_path, caplog):
    server.fail_next(2, status=500)
    client = make_client(server, tmp_path)

    with caplog.at_level(logging.WARNING, logger="zquant_pipelines.tushare"):
        frame = client.query("daily", trade_date=TRADE_DATE)

    assert len(frame) == 5
    assert outcomes(server) == ["http_error", "http_error", "ok"]
    assert any("HTTP 500" in record.getMessage() for record in caplog.records)
    assert client.calls_made == 3


def test_http_500_fails_as_transport_error_after_max_attempts(server, tmp_path):
    server.fail_next(100, status=503)
    client = make_client(server, tmp_path, max_attempts=3)

    with pytest.raises(TushareTransportError, match="HTTP 503") as raised:
        client.query("daily", trade_date=TRADE_DATE)

    assert "3 attempts" in str(raised.value)
    assert outcomes(server) == ["http_error"] * 3


def test_bad_token_raises_at_once(server, tmp_path):
    client = make_client(server, tmp_path, token="not-the-token-0000")

    with pytest.raises(TushareTokenError, match="token不对"):
        client.query("daily", trade_date=TRADE_DATE)

    assert outcomes(server) == ["bad_token"]


def test_permission_error_raises_at_once(server, tmp_path):
    server.deny("daily")

    with pytest.raises(TusharePermissionError, match="没有访问该接口的权限"):
        make_client(server, tmp_path).query("daily", trade_date=TRADE_DATE)

    assert outcomes(server) == ["no_permission"]


def test_reply_past_timeout_is_retried_as_transport_error(server, tmp_path):
    server.slow_next(1, seconds=3.0)
    client = make_client(server, tmp_path, timeout_seconds=0.3)

    frame = client.query("daily", trade_date=TRADE_DATE)

    assert len(frame) == 5
    delays = sorted(call.delay_seconds for call in server.calls_to("daily"))
    assert delays == [0.0, 3.0]


def test_reply_past_timeout_on_last_attempt_raises_transport_error(server, tmp_path):
    server.slow_next(1, seconds=3.0)

    with pytest.raises(TushareTransportError, match="Timeout"):
        make_client(server, tmp_path, timeout_seconds=0.3, max_attempts=1).query(
            "daily", trade_date=TRADE_DATE
        )


def cut_row(index: int, values: int):
    """A tamper dropping the last ``values`` values of row ``index`` (negative: adds some)."""

    def edit(data):
        row = data["items"][index]
        data["items"][index] = row[:-values] if values > 0 else row + [1.0] * -values

    return edit


def extra_field(data):
    data["fields"].append("turnover")
    for row in data["items"]:
        row.append(1.0)


def renamed_field(data):
    data["fields"][-1] = "amt"


def duplicated_field(data):
    data["fields"][-1] = data["fields"][-2]


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        # The SDK's pd.DataFrame(items, columns=fields) pads a short row with None: vol and
        # amount would read as NULL, like a genuine null.
        (cut_row(2, 2), r"row 2 has 9 values, expected 11"),
        (cut_row(0, -1), r"row 0 has 12 values, expected 11"),
        (extra_field, r"fields .*turnover.* do not match the requested"),
        (renamed_field, r"fields .*'amt'.* do not match the requested"),
        (duplicated_field, r"fields .*'vol', 'vol'.* do not match the requested"),
    ],
)
def test_malformed_reply_is_refused_naming_api_row_and_counts(server, tmp_path, tamper, named):
    server.tamper_next("daily", tamper)
    client = make_client(server, tmp_path)

    with pytest.raises(TushareReplyError, match=named) as raised:
        client.query("daily", trade_date=TRADE_DATE)

    assert f"tushare daily {{'trade_date': '{TRADE_DATE}'" in str(raised.value)
    # The same query would get the same reply: not retried within the call.
    assert outcomes(server) == ["tampered"]


def test_client_sends_the_sdks_request_and_reads_its_frame(server, tmp_path):
    fields = ",".join(API_FIELDS["daily"])
    api = tushare.pro_api(token=server.token)
    api._DataApi__http_url = server.url
    sdk_frame = api.query("daily", fields=fields, trade_date=TRADE_DATE, offset=0, limit=6000)

    frame = make_client(server, tmp_path).query("daily", trade_date=TRADE_DATE)

    sdk_call, client_call = server.calls
    assert (client_call.api_name, client_call.params, client_call.fields, client_call.outcome) == (
        sdk_call.api_name,
        sdk_call.params,
        sdk_call.fields,
        "ok",
    )
    pd.testing.assert_frame_equal(frame, sdk_frame)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fault_bad_token(server, tmp_path):
    client = make_client(server, tmp_path)
    server.token = "the-server-wants-another-token"
    return client


def fault_no_permission(server, tmp_path):
    server.deny("daily")
    return make_client(server, tmp_path)


def fault_http_errors(server, tmp_path):
    server.fail_next(100)
    return make_client(server, tmp_path, max_attempts=2)


def fault_rate_limited(server, tmp_path):
    server.limit_rate(0, 60.0)
    return make_client(server, tmp_path, max_attempts=2, rate_limit_window_seconds=0.05)


def fault_timeout(server, tmp_path):
    server.slow_next(2, seconds=3.0)
    return make_client(server, tmp_path, max_attempts=2, timeout_seconds=0.2)


def fault_unreachable_url_holding_token(server, tmp_path):
    # Gateways sometimes carry the token in the URL; requests then quotes it in its errors.
    url = f"http://127.0.0.1:{closed_port()}/dataapi/{DEFAULT_TOKEN}"
    return make_client(server, tmp_path, api_url=url, max_attempts=2)


def fault_server_echoes_token(tushare_server_factory, tmp_path):
    return make_client(tushare_server_factory(EchoingMarket()), tmp_path)


@pytest.mark.parametrize(
    "fault",
    [
        fault_bad_token,
        fault_no_permission,
        fault_http_errors,
        fault_rate_limited,
        fault_timeout,
        fault_unreachable_url_holding_token,
        fault_server_echoes_token,
    ],
)
def test_token_never_in_errors_or_logs(server, tushare_server_factory, tmp_path, caplog, fault):
    source = tushare_server_factory if fault is fault_server_echoes_token else server
    client = fault(source, tmp_path)

    with caplog.at_level(logging.DEBUG), pytest.raises(TushareError) as raised:
        client.query("daily", trade_date=TRADE_DATE)

    texts = [str(raised.value), repr(raised.value), repr(client), caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    assert all(DEFAULT_TOKEN not in text for text in texts)
    # No foreign exception rides along (its text could carry the token).
    error = raised.value
    assert error.__cause__ is None and (error.__suppress_context__ or error.__context__ is None)
    assert "daily" in str(raised.value)


@pytest.mark.parametrize(
    ("api_name", "params", "named"),
    [
        ("dailyy", {"trade_date": TRADE_DATE}, "dailyy"),
        ("daily", {"trade_date": TRADE_DATE, "offset": 10}, "offset"),
        ("daily", {"fields": "ts_code"}, "fields"),
    ],
)
def test_bad_query_is_named_before_any_call(server, tmp_path, api_name, params, named):
    with pytest.raises(ValueError, match=named):
        make_client(server, tmp_path).query(api_name, **params)

    assert server.calls == []


def test_bad_setting_is_named(server, tmp_path):
    with pytest.raises(ValueError, match=r"api_calls_per_minute\['daily'\].*0"):
        make_client(server, tmp_path, api_calls_per_minute={"daily": 0}).query(
            "daily", trade_date=TRADE_DATE
        )


def _query_repeatedly(url: str, rate_limit_dir: str, count: int, **settings) -> None:
    client = TushareClient(
        token=DEFAULT_TOKEN,
        api_url=url,
        calls_per_minute=4,
        rate_limit_window_seconds=1.0,
        rate_limit_dir=rate_limit_dir,
        max_attempts=1,
        **settings,
    )
    for _ in range(count):
        client.query("daily", trade_date=TRADE_DATE)


@pytest.mark.parametrize("store", ["files", "redis"])
def test_two_processes_stay_within_one_shared_budget(store, server, tmp_path, request):
    # The clients allow 4 calls a second between them; the server refuses a 5th within half a
    # second (half a window of slack for scheduling). Two separate budgets would send 8 at once.
    # files: one rate_limit_dir shared. redis: each process a directory of its own, as on two
    # machines, so only Redis can make their budgets one.
    server.limit_rate(4, 0.5, api_name="daily")
    # spawn, not fork: this process runs the wire server's threads, and a fork taken while one
    # of them holds a lock (logging, the socket layer) leaves the child blocked on it forever.
    context = multiprocessing.get_context("spawn")
    shared = {}
    if store == "redis":
        shared = {
            "rate_limit_url": request.getfixturevalue("redis_url"),
            "rate_limit_key_prefix": request.getfixturevalue("redis_key_prefix"),
        }
    directories = [tmp_path / ("rl" if store == "files" else f"rl{i}") for i in range(2)]
    workers = [
        context.Process(
            target=_query_repeatedly, args=(server.url, str(directory), 6), kwargs=shared
        )
        for directory in directories
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    for worker in workers:
        if worker.is_alive():
            worker.kill()

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert outcomes(server) == ["ok"] * 12
    if store == "redis":
        assert not list(directories[0].glob("*.json"))


# --- a budget shared across machines, in Redis ------------------------------------------
# Each client below gets a rate_limit_dir of its own: only Redis can make their budgets one,
# as it must for Celery workers on several hosts.


def test_rate_limit_reply_holds_the_other_machine_for_a_window(
    server, tmp_path, redis_url, redis_key_prefix
):
    window = 1.0
    server.limit_rate(0, 60.0, api_name="daily")
    shared = {"rate_limit_url": redis_url, "rate_limit_key_prefix": redis_key_prefix}
    refused = make_client(
        server, tmp_path / "a", rate_limit_window_seconds=window, max_attempts=2, **shared
    )
    other = make_client(
        server, tmp_path / "b", rate_limit_window_seconds=window, max_attempts=1, **shared
    )
    raised_in_first = []

    def query_refused() -> None:
        try:
            refused.query("daily", trade_date="1")
        except TushareRateLimitError as error:
            raised_in_first.append(error)

    first = threading.Thread(target=query_refused)
    first.start()
    observer = RedisRateLimiter(redis_url, key_prefix=redis_key_prefix)
    deadline = time.monotonic() + 10
    while observer.seconds_until_free("daily", 1000, window) == 0.0:
        assert time.monotonic() < deadline, "the refusal never started a cool-down in Redis"
        time.sleep(0.01)

    with pytest.raises(TushareRateLimitError):
        other.query("daily", trade_date="2")
    first.join(timeout=30)
    assert len(raised_in_first) == 1

    [refusal, *_] = [call for call in server.calls if call.params["trade_date"] == "1"]
    [held] = [call for call in server.calls if call.params["trade_date"] == "2"]
    assert held.received_at - refusal.received_at >= window


def test_unreachable_redis_fails_naming_the_setting_before_any_call(server, tmp_path, caplog):
    password = "s3cret-redis-password"
    client = make_client(
        server, tmp_path, rate_limit_url=f"redis://:{password}@127.0.0.1:{closed_port()}/0"
    )

    with caplog.at_level(logging.DEBUG), pytest.raises(RateLimitStoreError) as raised:
        client.query("daily", trade_date=TRADE_DATE)

    assert "ZQUANT_RATE_LIMIT_URL" in str(raised.value)
    assert all(password not in text for text in (str(raised.value), repr(client), caplog.text))
    assert server.calls == []
