"""Who may reach the web app: the loopback-only default, the ``user:password`` check, login backoff.

Pure rules, so they are tested without a server: binding a non-loopback address
needs ``NOTES_ASSISTANT_AUTH``; HTTP Basic credentials are compared in constant
time; ``LoginThrottle`` locks a client out after repeated wrong passwords.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["parse_auth", "is_loopback", "exposure_problem", "basic_auth_ok", "port_available", "LoginThrottle"]


def parse_auth(value: str) -> tuple[str, str] | None:
    """``"user:password"`` → ``("user", "password")``; None unless both parts are non-empty.

    >>> parse_auth("ada:s3cret:x"), parse_auth("ada:"), parse_auth("")
    (('ada', 's3cret:x'), None, None)
    """
    user, sep, password = (value or "").partition(":")
    return (user, password) if sep and user and password else None


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("example.org")
    (True, True, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, auth: str) -> str | None:
    """Why serving on ``host`` with ``auth`` is refused, or None when it is fine."""
    if auth and parse_auth(auth) is None:
        return "NOTES_ASSISTANT_AUTH must look like user:password (both parts non-empty)"
    if not is_loopback(host) and not auth:
        return (f"refusing to listen on {host} without a password; set NOTES_ASSISTANT_AUTH=user:password "
                "(and put TLS in front), or use --host 127.0.0.1")
    return None


def basic_auth_ok(header: str, credentials: tuple[str, str]) -> bool:
    """Does an ``Authorization: Basic …`` header carry ``credentials``? (constant-time compare)

    >>> basic_auth_ok("Basic " + base64.b64encode(b"ada:pw").decode(), ("ada", "pw"))
    True
    """
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    user_ok = secrets.compare_digest(user.encode(), credentials[0].encode())
    password_ok = secrets.compare_digest(password.encode(), credentials[1].encode())
    return user_ok and password_ok


def port_available(host: str, port: int) -> bool:
    """Can we listen on ``host:port``? (checked before the slow start, for a clear message)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class _Client:
    failures: deque = field(default_factory=deque)  # times of recent wrong passwords
    lockouts: int = 0  # lockouts so far, each twice as long as the one before
    locked_until: float = 0.0


class LoginThrottle:
    """Per-client backoff for wrong passwords (the login form and HTTP Basic alike).

    ``max_failures`` wrong passwords within ``window`` seconds lock the client out
    for ``window`` seconds, doubling with every further lockout up to ``max_lockout``;
    while locked out, even the right password is refused (that is what stops a guesser).
    A right password forgets the client's record. Clients are told apart by address,
    so behind a reverse proxy all of them share one record (a deliberate simplification:
    the app is meant to be reached directly, or by a few people).

    Args:
        max_failures: wrong passwords allowed per window.
        window: seconds a failure is remembered, and the first lockout's length.
        max_lockout: the longest lockout, in seconds.
        clock: monotonic seconds (injectable so tests need not wait).
        max_clients: records kept at most; the least recently seen are dropped first.

    >>> now = [0.0]; throttle = LoginThrottle(max_failures=2, window=60, clock=lambda: now[0])
    >>> throttle.failed("10.0.0.9"); throttle.retry_after("10.0.0.9")
    0.0
    >>> throttle.failed("10.0.0.9"); throttle.retry_after("10.0.0.9"), throttle.retry_after("10.0.0.7")
    (60.0, 0.0)
    >>> now[0] = 61.0; throttle.retry_after("10.0.0.9")
    0.0
    """

    def __init__(self, max_failures: int = 10, window: float = 60.0, max_lockout: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_lockout = max_lockout
        self.clock = clock
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()  # the HTTP gate (event loop) and route dependencies (threads) share it

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must wait before a password is checked again (0 = now)."""
        with self._lock:
            record = self._clients.get(client)
            return max(0.0, record.locked_until - self.clock()) if record else 0.0

    def failed(self, client: str) -> None:
        """Record a wrong password from ``client``; the ``max_failures``-th in a window locks it out."""
        now = self.clock()
        with self._lock:
            record = self._clients.pop(client, None) or _Client()
            self._clients[client] = record  # most recently seen last
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            while record.failures and record.failures[0] <= now - self.window:
                record.failures.popleft()
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.failures.clear()
                record.lockouts += 1
                record.locked_until = now + min(self.window * 2 ** (record.lockouts - 1), self.max_lockout)

    def succeeded(self, client: str) -> None:
        """The right password from ``client``: its failures and lockouts are forgotten."""
        with self._lock:
            self._clients.pop(client, None)
