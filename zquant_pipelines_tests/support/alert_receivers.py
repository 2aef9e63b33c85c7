"""Local receivers of real alerts: an HTTP server taking Apprise's JSON webhook posts and an
SMTP server (aiosmtpd) taking its e-mail, each keeping what it received; and the count of a
sensor's ticks, to see the daemon tick again after an alert."""

import contextlib
import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from zquant_pipelines_tests.support.ports import LOOPBACK, bound_socket, port_of


class JsonReceiver:
    """Apprise's ``json://`` target: each post's JSON document (title, message, ...)."""

    def __init__(self):
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/"

    def texts(self) -> list[str]:
        return [f"{post['title']}\n{post['message']}" for post in self.received]


class SmtpReceiver:
    """Apprise's ``mailto://`` target over plain SMTP: each e-mail's subject and text."""

    def __init__(self):
        self.received: list[email.message.EmailMessage] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                receiver.received.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                return "250 OK"

        self.controller = BoundController(Handler(), bound_socket())
        port = self.controller.port
        # mailto (not mailtos) with mode=insecure: plain SMTP, no TLS, no login.
        self.url = (
            f"mailto://127.0.0.1:{port}?from=zquant@example.com&to=ops@example.com&mode=insecure"
        )

    def texts(self) -> list[str]:
        return [
            f"{message['subject']}\n{message.get_body(preferencelist=('plain',)).get_content()}"
            for message in self.received
        ]


class BoundController(Controller):
    """aiosmtpd's Controller listening on a socket bound beforehand (``ports.bound_socket``),
    so that no other process takes its port between the choice and the listen; aiosmtpd
    binds host and port itself otherwise (``_create_server``, aiosmtpd 1.4)."""

    def __init__(self, handler, sock: socket.socket):
        super().__init__(handler, hostname=LOOPBACK, port=port_of(sock))
        self.sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


@contextlib.contextmanager
def alert_receivers():
    """A running JsonReceiver and SmtpReceiver, stopped on exit."""
    web, mail = JsonReceiver(), SmtpReceiver()
    thread = threading.Thread(target=web.server.serve_forever, daemon=True)
    thread.start()
    mail.controller.start()
    try:
        yield web, mail
    finally:
        mail.controller.stop()
        web.server.shutdown()
        web.server.server_close()


def sensor_ticks(instance, sensor_name: str) -> list:
    """The ticks of ``sensor_name`` the instance holds, newest first."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    state = next((s for s in states if s.instigator_name == sensor_name), None)
    return instance.get_ticks(state.instigator_origin_id, state.selector_id) if state else []


def sensor_tick_count(instance, sensor_name: str) -> int:
    return len(sensor_ticks(instance, sensor_name))


def finished_tick_count(instance, sensor_name: str) -> int | None:
    """How many ticks of ``sensor_name`` have ended; None while one is in progress."""
    ticks = sensor_ticks(instance, sensor_name)
    return None if any(tick.status == TickStatus.STARTED for tick in ticks) else len(ticks)
