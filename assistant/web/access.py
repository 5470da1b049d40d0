"""Who may reach the web app: the loopback-only default and the ``user:password`` check.

Pure functions, so the rules are tested without a server: binding a
non-loopback address needs ``NOTES_ASSISTANT_AUTH``; HTTP Basic credentials are
compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import socket

__all__ = ["parse_auth", "is_loopback", "exposure_problem", "basic_auth_ok", "port_available"]


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
