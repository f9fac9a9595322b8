"""Removal of secret values from text before it reaches the journal, a trace or the logs."""

from __future__ import annotations

import logging
import re
from typing import Callable, Iterable

__all__ = ["Scrubber", "ScrubbingFilter", "REDACTED"]

REDACTED = "***"

# user:password@ in a URL or connection string; the user name stays readable
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)(?=@)")
# token=..., api_key=..., password=... in query strings and key=value lists
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|access_token|refresh_token|api_key|apikey"
    r"|client_secret|private_key|sig|signature)\s*[=:]\s*['\"]?)(?P<secret>[^\s'\"&;,)}]+)",
    re.IGNORECASE,
)
# values shorter than this are not scrubbed on their own: they would match ordinary words
MIN_SECRET_LENGTH = 4


class Scrubber:
    """Replace known secret values and secret-shaped substrings with `***`.

    Known secrets are exact strings, such as resolved credential values. Patterns catch passwords
    in connection strings (`postgresql://user:pw@host`) and tokens in URLs (`?token=...`).
    NOTE: a secret that is neither known nor in one of these shapes is not found.
    """

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._pending: list[Callable[[], Iterable[str]]] = []
        self.add(known_secrets)

    def add_later(self, find_secrets: Callable[[], Iterable[str]]) -> None:
        """Call `find_secrets` before the next scrub and add the values it returns.

        Finding secrets can be slow (dlt resolves the destination's configuration), and a run
        that fails nowhere and stores no trace scrubs nothing, so it never pays for it.
        """
        self._pending.append(find_secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Add exact secret values to scrub."""
        for value in secrets:
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
                self._known.add(value)

    def scrub(self, text: str) -> str:
        """Return `text` with the known secrets and secret-shaped substrings replaced by `***`."""
        while self._pending:
            # taken off the list first: finding secrets may log, and the log filter scrubs
            self.add(self._pending.pop()())
        for secret in sorted(self._known, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
        return _KEY_VALUE.sub(lambda m: m.group("head") + REDACTED, text)


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs the message of every record, such as those of dlt's logger."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrubber.scrub(record.getMessage())
        record.args = ()
        return True
