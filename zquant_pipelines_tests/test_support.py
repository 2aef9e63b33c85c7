"""Test support that concurrent runs rely on: loopback ports (support/ports.py: a server of
ours holds its port from the start, an external program that lost its port to another
process is started again on another, never taken for the other process's server) and Redis
databases and RabbitMQ virtual hosts claimed for one run (support/services.py)."""

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import amqp
import kombu
import pytest
import redis
import requests

from zquant_pipelines_tests.support.alert_receivers import SmtpReceiver
from zquant_pipelines_tests.support.ports import (
    LOOPBACK,
    STOP_SIGNALS,
    accepts_connections,
    launch_on_free_port,
    start_logged,
    stop_group,
)
from zquant_pipelines_tests.support.services import (
    RABBITMQ_URL,
    claimed_rabbitmq_vhost,
    claimed_redis_db,
)


def test_the_smtp_receiver_holds_its_port_before_it_starts():
    receiver = SmtpReceiver()

    with socket.socket() as other, pytest.raises(OSError) as caught:
        other.bind((LOOPBACK, receiver.controller.port))

    assert caught.value.errno == errno.EADDRINUSE
    receiver.controller.sock.close()


def test_a_program_whose_port_was_taken_is_started_again_on_another(tmp_path):
    """The first port is taken (and answered on) by another process before the program binds
    it: that answer is not the program's, which fails and is started on another port."""
    log_path = tmp_path / "server.log"
    taken = []

    def launch(port: int) -> subprocess.Popen:
        if not taken:
            thief = ThreadingHTTPServer((LOOPBACK, port), SimpleHTTPRequestHandler)
            threading.Thread(target=thief.serve_forever, daemon=True).start()
            taken.append(thief)
        server = [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK]
        return start_logged(server, log_path, cwd=tmp_path)

    def answers(port: int) -> bool:
        try:
            return requests.get(f"http://{LOOPBACK}:{port}/", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    try:
        process, port = launch_on_free_port(
            launch, log_path.read_text, answers, stop, "http.server", timeout=60
        )
        try:
            assert port != taken[0].server_address[1]
            assert answers(taken[0].server_address[1])  # the thief answered all along
            assert "already in use" not in log_path.read_text()  # the second start's log
        finally:
            stop(process)
    finally:
        taken[0].shutdown()
        taken[0].server_close()


# A server that sets SO_REUSEPORT, as gRPC servers (a code server) do: it binds a port another
# such listener holds, and the kernel shares the connections out between the two.
REUSEPORT_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
while True:
    server.accept()[0].close()
"""


def test_a_program_that_shares_its_port_with_another_listener_is_started_again(tmp_path):
    """The first port gets another process's SO_REUSEPORT listener as well: the program binds
    it too, but half its connections would go to the other one, so it is started elsewhere."""
    sharers = []

    def launch(port: int) -> subprocess.Popen:
        if not sharers:
            sharer = socket.socket()
            sharer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sharer.bind((LOOPBACK, port))
            sharer.listen()
            sharers.append(sharer)
        return subprocess.Popen(
            [sys.executable, "-c", REUSEPORT_SERVER, str(port)], start_new_session=True
        )

    try:
        process, port = launch_on_free_port(
            launch, str, accepts_connections, stop_group, "the SO_REUSEPORT server", timeout=60
        )
        try:
            assert port != sharers[0].getsockname()[1]
        finally:
            stop_group(process)
    finally:
        sharers[0].close()


def test_concurrent_runs_get_redis_databases_of_their_own_and_flush_only_theirs(redis_url):
    def keys(url: str) -> set[bytes]:
        client = redis.Redis.from_url(url)
        try:
            return set(client.keys("queue-*"))
        finally:
            client.close()

    def put(url: str, key: str) -> None:
        client = redis.Redis.from_url(url)
        try:
            client.set(key, "step")
        finally:
            client.close()

    with claimed_redis_db(redis_url) as mine:
        with claimed_redis_db(redis_url) as theirs:
            assert theirs != mine
            put(mine, "queue-mine")
            put(theirs, "queue-theirs")
            assert keys(theirs) == {b"queue-theirs"}
        assert keys(theirs) == set()
        assert keys(mine) == {b"queue-mine"}
    assert keys(mine) == set()


def test_concurrent_runs_get_rabbitmq_virtual_hosts_of_their_own():
    def queued(url: str) -> int:
        with kombu.Connection(url) as connection, connection.SimpleQueue("dagster") as queue:
            return queue.qsize()

    with claimed_rabbitmq_vhost(RABBITMQ_URL) as mine:
        with claimed_rabbitmq_vhost(RABBITMQ_URL) as theirs:
            assert theirs != mine
            with kombu.Connection(mine) as connection, connection.SimpleQueue("dagster") as queue:
                queue.put("step")
            assert queued(theirs) == 0
        assert queued(mine) == 1
    with pytest.raises(amqp.exceptions.NotAllowed, match="vhost .* not found"):
        queued(mine)


@pytest.mark.parametrize("number", STOP_SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_a_started_server_ends_on_a_stop_signal_even_when_this_process_ignores_it(tmp_path, number):
    """An ignored signal survives exec; a Dagster job run in the test process can leave
    SIGTERM ignored here, a background job of a script starts with SIGINT ignored.
    start_logged's process must still end on the signal, not on stop_group's SIGKILL after
    its timeout."""
    previous = signal.signal(number, signal.SIG_IGN)
    try:
        process = start_logged(
            [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "log"
        )
        assert signal.getsignal(number) == signal.SIG_IGN  # left as it was found
    finally:
        signal.signal(number, previous)
    os.killpg(process.pid, number)
    try:
        process.wait(timeout=30)
    finally:
        stop_group(process)
    assert process.returncode == -number
