"""A local HTTP server speaking tushare's wire protocol, with faults tests can switch on.

The real ``tushare`` SDK talks to it unchanged (point ``api._DataApi__http_url`` or
``TushareClient.api_url`` at ``server.url``). Data comes from a backing object with
``query(api_name, **params) -> DataFrame`` (the sample market, or a small test market);
the server picks the requested fields, pages with ``offset``/``limit`` under a per-API row
limit, checks the token, and records every call (without the token) so tests can count
calls per API. Faults: a calls-per-window limit answered with tushare's exact message,
HTTP errors, a denied API, slow replies, a short reply (a day not yet fully published), a
reply held until the test releases it (a run caught mid-range).
"""

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlparse

import pandas as pd

from zquant_pipelines.constants import API_ROW_LIMITS, DEFAULT_ROW_LIMIT

DEFAULT_TOKEN = "wire-test-token-0123456789abcdef"
BASE_PATH = "dataapi"

CODE_OK = 0
CODE_BAD_TOKEN = 40101
CODE_LIMITED = 40203
CODE_SERVER_ERROR = 50000

BAD_TOKEN_MESSAGE = "您的token不对，请确认。"
NO_PERMISSION_MESSAGE = "抱歉，您没有访问该接口的权限"
RATE_LIMIT_MESSAGE = (
    "抱歉，您每分钟最多访问该接口{calls}次，"
    "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
)

# Params the server consumes itself instead of handing them to the backing market. The SDK
# adds ts_type_name (its own URL) to every request.
_SERVER_PARAMS = ("offset", "limit", "ts_type_name")


class BackingMarket(Protocol):
    def query(self, api_name: str, **params: Any) -> pd.DataFrame: ...


@dataclass(frozen=True)
class WireCall:
    """One request as the server saw it. ``params`` are the request's, minus ts_type_name."""

    api_name: str
    params: dict[str, Any]
    fields: str
    received_at: float
    # ok | tampered | http_error | bad_token | no_permission | rate_limited | error
    outcome: str
    rows: int = 0
    delay_seconds: float = 0.0

    @property
    def asked(self) -> tuple[str, str]:
        """The first and last day (YYYYMMDD) the call asked for (``asked_range``)."""
        return asked_range(self.params)


def asked_range(params: Mapping[str, Any]) -> tuple[str, str]:
    """The first and last day (YYYYMMDD) a request asks for: its trade_date, or its
    start_date..end_date ("" where it names none)."""
    day = params.get("trade_date")
    return str(day or params.get("start_date") or ""), str(day or params.get("end_date") or "")


@dataclass
class _RateRule:
    calls: int
    window_seconds: float
    accepted_at: dict[str, list[float]] = field(default_factory=dict)


class TushareWireServer:
    """Serve ``backing`` over tushare's wire protocol on 127.0.0.1 (a free port).

    Use as a context manager, or call ``start()``/``stop()``. Each API's reply is capped at
    tushare's row limit (``API_ROW_LIMITS``), or at ``row_limit`` for every API if given;
    ``row_limits`` overrides either per API.
    """

    def __init__(
        self,
        backing: BackingMarket,
        token: str = DEFAULT_TOKEN,
        row_limit: int | None = None,
        row_limits: Mapping[str, int] | None = None,
    ):
        self.backing = backing
        self.token = token
        self.row_limit = row_limit
        self.row_limits = dict(row_limits or {})
        self._lock = threading.Lock()
        self._calls: list[WireCall] = []
        self._http_failures: list[int] = []
        self._slow_replies: list[float] = []
        self._denied: set[str] = set()
        self._short_replies: dict[tuple[str, str | None], int] = {}
        self._held: dict[tuple[str, str], threading.Event] = {}
        self._rate_rules: dict[str | None, _RateRule] = {}
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tampers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> "TushareWireServer":
        server = self

        class Handler(_WireHandler):
            wire_server = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            # A short poll keeps stop() quick: shutdown waits for the loop's next poll.
            kwargs={"poll_interval": 0.05},
            name="tushare-wire-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes slow replies so shutdown does not wait for them
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> "TushareWireServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the SDK (it posts to ``{url}/{api_name}``)."""
        if self._httpd is None:
            raise RuntimeError("TushareWireServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{BASE_PATH}"

    # -- faults ----------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests (any API) with HTTP ``status``."""
        with self._lock:
            self._http_failures.extend([status] * count)

    def slow_next(self, count: int, seconds: float) -> None:
        """Hold the next ``count`` requests for ``seconds`` before answering."""
        with self._lock:
            self._slow_replies.extend([seconds] * count)

    def hold(self, api_name: str, trade_date: str) -> None:
        """Keep every request of ``api_name`` for ``trade_date`` (YYYYMMDD), or for a range
        holding it, waiting after it is recorded, until ``release()``: a run stays mid-range
        as long as a test needs."""
        with self._lock:
            self._held[(api_name, trade_date)] = threading.Event()

    def release(self) -> None:
        """Answer the held requests, and the later ones at once."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for event in held:
            event.set()

    def deny(self, api_name: str) -> None:
        """Answer ``api_name`` with tushare's no-permission error."""
        with self._lock:
            self._denied.add(api_name)

    def short_reply(self, api_name: str, rows: int = 0, trade_date: str | None = None) -> None:
        """Answer ``api_name`` with only its first ``rows`` rows, or, with ``trade_date``
        (YYYYMMDD), only that day's first ``rows`` rows in any reply holding the day (one
        day's or a range's), as tushare does for a day it has not (fully) published."""
        with self._lock:
            self._short_replies[(api_name, trade_date)] = rows

    def limit_rate(self, calls: int, window_seconds: float, api_name: str | None = None) -> None:
        """Accept at most ``calls`` per sliding ``window_seconds`` for each API (or only
        ``api_name``); further calls get code 40203 and tushare's per-minute message."""
        with self._lock:
            self._rate_rules[api_name] = _RateRule(calls, window_seconds)

    def tamper_next(self, api_name: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Let ``edit`` change the ``data`` ({"fields", "items", ...}) of ``api_name``'s next
        successful reply in place: a short row, a renamed field (outcome ``tampered``)."""
        with self._lock:
            self._tampers.setdefault(api_name, []).append(edit)

    def clear_faults(self) -> None:
        with self._lock:
            self._tampers.clear()
            self._http_failures.clear()
            self._slow_replies.clear()
            self._denied.clear()
            self._rate_rules.clear()
            self._short_replies.clear()

    # -- what was called -------------------------------------------------------------

    @property
    def calls(self) -> list[WireCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, api_name: str, outcome: str | None = None) -> list[WireCall]:
        return [
            call
            for call in self.calls
            if call.api_name == api_name and (outcome is None or call.outcome == outcome)
        ]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- serving ---------------------------------------------------------------------

    def _record(self, call: WireCall) -> None:
        with self._lock:
            self._calls.append(call)

    def _tamper(self, api_name: str, data: dict[str, Any]) -> bool:
        """Apply the next tamper_next edit of ``api_name`` to a reply's data, if any."""
        with self._lock:
            edits = self._tampers.get(api_name)
            edit = edits.pop(0) if edits else None
        if edit is not None:
            edit(data)
        return edit is not None

    def _next_fault(self, api_name: str, now: float) -> tuple[int | None, float, str | None]:
        """The HTTP failure, delay and refusal message (if any) for this request."""
        with self._lock:
            http_status = self._http_failures.pop(0) if self._http_failures else None
            delay = self._slow_replies.pop(0) if self._slow_replies else 0.0
            if http_status is not None:
                return http_status, delay, None
            if api_name in self._denied:
                return None, delay, NO_PERMISSION_MESSAGE
            rule = self._rate_rules.get(api_name) or self._rate_rules.get(None)
            if rule is not None:
                accepted = [
                    t for t in rule.accepted_at.get(api_name, []) if t > now - rule.window_seconds
                ]
                if len(accepted) >= rule.calls:
                    rule.accepted_at[api_name] = accepted
                    return None, delay, RATE_LIMIT_MESSAGE.format(calls=rule.calls)
                rule.accepted_at[api_name] = [*accepted, now]
            return None, delay, None

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any] | str]:
        """Answer one POST: (HTTP status, JSON reply or plain-text error body)."""
        received_at = time.time()
        try:
            request = json.loads(body)
        except ValueError:
            return 400, "request body is not JSON"
        if not isinstance(request, dict):
            return 400, "request body is not a JSON object"
        path_api = _api_name_from_path(path)
        api_name = path_api or request.get("api_name") or ""
        if path_api and request.get("api_name") not in (None, path_api):
            return 400, f"path names {path_api!r} but body names {request.get('api_name')!r}"
        params = dict(request.get("params") or {})
        fields = request.get("fields") or ""
        http_status, delay, refusal = self._next_fault(api_name, received_at)
        status, outcome, reply, rows = self._answer(
            request, api_name, params, fields, http_status, refusal
        )
        if outcome == "ok" and self._tamper(api_name, reply["data"]):
            outcome = "tampered"
        recorded_params = {k: v for k, v in params.items() if k != "ts_type_name"}
        self._record(WireCall(api_name, recorded_params, fields, received_at, outcome, rows, delay))
        # Recorded before the delay, so a test sees the call while its client is timing out.
        if delay:
            self._stopping.wait(delay)
        held = self._hold_for(api_name, params)
        while held is not None and not held.wait(0.05) and not self._stopping.is_set():
            pass
        return status, reply

    def _answer(
        self,
        request: Mapping[str, Any],
        api_name: str,
        params: Mapping[str, Any],
        fields: str,
        http_status: int | None,
        refusal: str | None,
    ) -> tuple[int, str, dict[str, Any] | str, int]:
        """(HTTP status, outcome, reply, rows served) for one request."""
        if http_status is not None:
            return http_status, "http_error", f"injected HTTP {http_status}", 0
        if request.get("token") != self.token:
            return 200, "bad_token", _reply(CODE_BAD_TOKEN, BAD_TOKEN_MESSAGE), 0
        if refusal is not None:
            outcome = "no_permission" if refusal == NO_PERMISSION_MESSAGE else "rate_limited"
            return 200, outcome, _reply(CODE_LIMITED, refusal), 0
        try:
            offset, limit = self._page_bounds(api_name, params)
            frame = self.backing.query(
                api_name, **{k: v for k, v in params.items() if k not in _SERVER_PARAMS}
            )
            frame = _pick_fields(self._shortened(api_name, frame), fields)
        except Exception as error:  # noqa: BLE001 - like tushare, answer every failure with a code
            message = f"{api_name}: {type(error).__name__}: {error}"
            return 200, "error", _reply(CODE_SERVER_ERROR, message), 0
        page = frame.iloc[offset : offset + limit]
        data = {
            "fields": list(page.columns),
            "items": _json_rows(page),
            "has_more": offset + limit < len(frame),
            "count": len(frame),
        }
        return 200, "ok", _reply(CODE_OK, "", data), len(page)

    def _hold_for(self, api_name: str, params: Mapping[str, Any]) -> threading.Event | None:
        """The hold of a day this request asks for: its trade_date, or within its range."""
        first, last = asked_range(params)
        with self._lock:
            for (api, day), event in self._held.items():
                if api == api_name and first <= day <= last:
                    return event
        return None

    def _shortened(self, api_name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """The reply as short-reply faults leave it: a day's fault keeps that day's first
        rows in any reply holding it (one day's, or a range's), an API-wide one the reply's
        first rows."""
        with self._lock:
            rules = {day: n for (api, day), n in self._short_replies.items() if api == api_name}
        if None in rules:
            frame = frame.iloc[: rules.pop(None)]
        for day, rows in rules.items():
            on_day = frame.index[frame["trade_date"] == day]
            frame = frame.drop(on_day[rows:])
        return frame

    def _page_bounds(self, api_name: str, params: Mapping[str, Any]) -> tuple[int, int]:
        cap = self.row_limits.get(
            api_name, self.row_limit or API_ROW_LIMITS.get(api_name, DEFAULT_ROW_LIMIT)
        )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or cap)
        if offset < 0 or limit < 1:
            raise ValueError(f"offset must be >= 0 and limit >= 1, got {offset} and {limit}")
        return offset, min(limit, cap)


class _WireHandler(BaseHTTPRequestHandler):
    wire_server: TushareWireServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        status, reply = self.wire_server.handle(self.path, self.rfile.read(length))
        if isinstance(reply, str):
            payload, content_type = reply.encode(), "text/plain; charset=utf-8"
        else:
            payload = json.dumps(reply, ensure_ascii=False, allow_nan=False).encode()
            content_type = "application/json; charset=utf-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a slow reply past its timeout): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output quiet; calls are recorded on the server instead


def _api_name_from_path(path: str) -> str | None:
    parts = [part for part in urlparse(path).path.split("/") if part and part != BASE_PATH]
    return parts[-1] if parts else None


def _pick_fields(frame: pd.DataFrame, fields: str) -> pd.DataFrame:
    wanted = [name.strip() for name in fields.split(",") if name.strip()]
    if not wanted:
        return frame
    unknown = [name for name in wanted if name not in frame.columns]
    if unknown:
        raise ValueError(f"unknown fields {unknown}")
    return frame[wanted]


def _json_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows of plain Python values: numpy scalars become int/float/bool (object columns
    hold Python values), every missing value (NaN, None, NaT, pd.NA) becomes null. Whole
    columns at a time: a reply of the whole market is 50,000 values, and the server stands
    in for tushare in the sync benchmark, so its own cost should stay small."""
    return frame.astype(object).where(frame.notna(), None).to_numpy().tolist()


def _reply(code: int, msg: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"request_id": uuid.uuid4().hex, "code": code, "msg": msg, "data": data}
