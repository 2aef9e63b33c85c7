"""Loopback ports for the tests' servers, without the race of a port picked free, released,
then bound: between the two, another process (the other pytest-xdist worker, another test
run on the machine) can take it.

- A server of ours (uvicorn in a thread, the SMTP receiver) is handed a socket bound to
  port 0 (``bound_socket``): the kernel's choice is held from the start.
- An external program that takes port numbers (`make dev`, `zquant api`, a code server,
  nginx) is started by ``launch_on_free_ports``: on ports free when picked, and started
  again on others when it reports that it could not bind one. Per-worker port ranges
  (PYTEST_XDIST_WORKER) would only keep one run's two workers apart: concurrent runs share
  worker names, and the kernel hands out ports of any range as ephemeral ones. The program
  is taken as serving only once each port's listeners are its own process group alone, not
  merely when something answers there (another test's `make dev` on a port it took
  meanwhile would answer too). gRPC servers (a code server) set SO_REUSEPORT: two of them
  can listen on one port at once, and a program sharing its port is started again too.
- ``unused_port`` is for a URL where nothing listens (a dead endpoint) only.
"""

import errno
import os
import signal
import socket
import subprocess
import threading
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
    """A port nothing listens on now, for a URL where nothing should answer (a dead endpoint).
    Not for a server to bind later: another process may take it first (hence
    ``launch_on_free_ports``)."""
    with bound_socket() as probe:
        return port_of(probe)


def accepts_connections(port: int) -> bool:
    """Whether something accepts a TCP connection on loopback ``port`` now."""
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True


def listener_groups(port: int) -> set[int]:
    """The process groups of the processes listening on ``port``: more than one when they
    share it (SO_REUSEPORT, which gRPC servers set); empty when nothing listens (or the
    listener just ended)."""
    groups = set()
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr.port == port
            and connection.pid
        ):
            try:
                groups.add(os.getpgid(connection.pid))
            except ProcessLookupError:
                pass
    return groups


# The signals a server is stopped with: SIGTERM (stop_group), SIGINT (Dagster's servers map
# SIGTERM to SIGINT's handler and stop their children with an interrupt).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def start_logged(
    argv: list[str], log_path, cwd=None, env: dict | None = None, stdout_too: bool = True
) -> subprocess.Popen:
    """``argv`` in a session of its own (its group is its pid, as ``launch_on_free_ports``
    and ``stop_group`` need), stderr (and stdout unless ``stdout_too`` is False) written to
    ``log_path``, with SIGINT and SIGTERM handled by default.

    An ignored signal survives exec, and this process can have them ignored: a Dagster job
    run here sets SIGTERM to SIGINT's handler, and SIGINT is ignored in a background job of
    a non-interactive shell. The server would then ignore ``stop_group``'s SIGTERM. So the
    defaults are put in place for the start (signals can be set from the main thread
    only)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {number: signal.signal(number, signal.SIG_DFL) for number in STOP_SIGNALS}
        if main_thread
        else {}
    )
    try:
        with open(log_path, "w") as log:
            return subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=log if stdout_too else subprocess.DEVNULL,
                stderr=subprocess.STDOUT if stdout_too else log,
                start_new_session=True,
            )
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_group(process: subprocess.Popen, timeout: float = 60) -> None:
    """End a process started with ``start_new_session=True`` and every process it started
    (its group): SIGTERM, SIGKILL after ``timeout`` seconds."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def launch_on_free_ports(
    launch: Callable[..., subprocess.Popen],
    output: Callable[[], str],
    serving: Callable[..., bool],
    stop: Callable[[subprocess.Popen], None],
    what: str,
    timeout: float,
    count: int = 1,
) -> tuple[subprocess.Popen, tuple[int, ...]]:
    """``launch(*ports)`` (a process started with ``start_new_session=True``, so that its
    group is its pid) on ``count`` free ports, once it serves there: each port's listeners
    are its group alone and ``serving(*ports)``. A process that ended is ``stop``-ped (its
    children) and, when its ``output()`` says a port was taken, started again on others; so
    is one that shares a port with another process's listener."""
    for attempt in range(1, START_ATTEMPTS + 1):
        ports = tuple(unused_port() for _ in range(count))
        process = launch(*ports)

        def outcome() -> str | None:
            if process.poll() is not None:  # noqa: B023 - used within the iteration
                return "ended"
            groups = [listener_groups(port) for port in ports]  # noqa: B023
            if any(process.pid in found and len(found) > 1 for found in groups):  # noqa: B023
                return "shared"
            if all(found == {process.pid} for found in groups) and serving(*ports):  # noqa: B023
                return "serving"
            return None

        try:
            state = wait_until(outcome, timeout, f"{what} to serve on ports {ports}")
        except AssertionError:
            stop(process)
            raise
        if state == "serving":
            return process, ports
        stop(process)
        text = output() if state == "ended" else f"another process listens on {ports} too"
        lost = state == "shared" or BIND_FAILURE in text.lower()
        if not lost or attempt == START_ATTEMPTS:
            raise AssertionError(
                f"{what} {state} (attempt {attempt} of {START_ATTEMPTS}):\n{text[-3000:]}"
            )


def launch_on_free_port(
    launch: Callable[[int], subprocess.Popen],
    output: Callable[[], str],
    serving: Callable[[int], bool],
    stop: Callable[[subprocess.Popen], None],
    what: str,
    timeout: float,
) -> tuple[subprocess.Popen, int]:
    """``launch_on_free_ports`` for a program that takes one port."""
    process, (port,) = launch_on_free_ports(launch, output, serving, stop, what, timeout)
    return process, port
