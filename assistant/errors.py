"""Errors of the assistant package: an LLM backend that is missing, unreachable or failing.

The service turns ``BackendUnavailableError`` into a one-line notice and the
offline extractive answer; only the CLI/UI edges turn errors into user text.
"""

from __future__ import annotations

from assistant.settings import SettingsError

__all__ = ["AssistantError", "BackendNotConfiguredError", "BackendUnavailableError"]


class AssistantError(Exception):
    """Base class of the assistant package's errors."""


class BackendUnavailableError(AssistantError):
    """The LLM endpoint did not give a usable answer (refused, HTTP error, timeout, broken stream).

    The message is one short line naming the endpoint and what went wrong.
    """


class BackendNotConfiguredError(BackendUnavailableError, SettingsError):
    """An LLM backend was chosen without its base URL or model.

    It is also a ``SettingsError``: the CLI already reports those as one line and
    exit code 2, which is right for a configuration mistake.
    """
