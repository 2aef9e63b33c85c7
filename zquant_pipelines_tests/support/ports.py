"""Loopback ports for the tests' servers, without the race of a port picked free, released,
then bound: between the two, another process (the other pytest-xdist worker, another test
run on the machine) can take it.

- A server of ours (uvicorn in a thread, the SMTP receiver) is handed a socket bound to
  port 0 (``bound_socket``): the kernel's choice is held from the start.
- An external program that takes a port number (`make dev`) is started by
  ``launch_on_free_port``: on a port free when picked, and started again on another when it
  reports that it could not bind it. Per-worker port ranges (PYTEST_XDIST_WORKER) would only
  keep one run's two workers apart: concurrent runs share worker names, and the kernel hands
  out ports of any range as ephemeral ones. The program is taken as serving only once the
  port's listener is in its own process group, not merely when something answers there
  (another test's `make dev` on a port it took meanwhile would answer too).
"""

import errno
import os
import socket
import subprocess
from collections.abc import Callable

import psutil

from zquant_pipelines_tests.support.waiting import wait_until

LOOPBACK = "127.0.0.1"
# A program that lost its port to another process is started again on another this often.
START_ATTEMPTS = 3
# What uvicorn (and so dagster-webserver) logs when the port is taken: EADDRINUSE's text.
BIND_FAILURE = os.strerror(errno.EADDRINUSE).lower()


def bound_socket() -> socket.socket:
    """A TCP socket bound to a loopback port of the kernel's choice, for a server of ours to
    listen on."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    return sock


def port_of(sock: socket.socket) -> int:
    return sock.getsockname()[1]


def unused_port() -> int:
    """A port nothing listens on now; another process may take it before the caller uses it
    (hence ``launch_on_free_port``)."""
    with bound_socket() as probe:
        return port_of(probe)


def listener_group(port: int) -> int | None:
    """The process group of the process listening on ``port``; None when nothing does (or it
    just ended)."""
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr.port == port
            and connection.pid
        ):
            try:
                return os.getpgid(connection.pid)
            except ProcessLookupError:
                return None
    return None


def launch_on_free_port(
    launch: Callable[[int], subprocess.Popen],
    output: Callable[[], str],
    serving: Callable[[int], bool],
    stop: Callable[[subprocess.Popen], None],
    what: str,
    timeout: float,
) -> tuple[subprocess.Popen, int]:
    """``launch(port)`` (a process started with ``start_new_session=True``, so that its group
    is its pid) on a free port, once it serves there: its port's listener is in its group and
    ``serving(port)``. A process that ended is ``stop``-ped (its children) and, when its
    ``output()`` says the port was taken, started again on another port."""
    for attempt in range(1, START_ATTEMPTS + 1):
        port = unused_port()
        process = launch(port)
        try:
            wait_until(
                lambda: process.poll() is not None  # noqa: B023 - used within the iteration
                or (listener_group(port) == process.pid and serving(port)),  # noqa: B023
                timeout,
                f"{what} to serve on port {port}",
            )
        except AssertionError:
            stop(process)
            raise
        if process.poll() is None:
            return process, port
        stop(process)
        text = output()
        if BIND_FAILURE not in text.lower() or attempt == START_ATTEMPTS:
            raise AssertionError(
                f"{what} ended (attempt {attempt} of {START_ATTEMPTS}):\n{text[-3000:]}"
            )
