"""One secret scrubber for error messages, exception chains and event payloads.

Servers echo credentials back (an Authorization header in an error body, a key in an HTML
page), so every text that leaves the provider goes through the same rule: the literal
secrets it was given (the api_key, credential-like header values) and anything shaped
like a bearer token or an sk- key become "***".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .config import NO_API_KEY

MARK = "***"
# Shorter values are placeholders ("none", "EMPTY") or words: scrubbing them would mangle
# ordinary text.
MIN_SECRET = 6
_PLACEHOLDERS = frozenset({NO_API_KEY})
_SHAPES = (
    re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE),
    re.compile(r"()\bsk-[A-Za-z0-9_-]{6,}"),
)


class Scrubber:
    """Removes secrets from text, nested payloads and exception chains."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        kept = {
            s
            for s in secrets
            if isinstance(s, str) and len(s) >= MIN_SECRET and s not in _PLACEHOLDERS
        }
        # Longest first: a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(kept, key=len, reverse=True))

    @classmethod
    def of(cls, secrets: Secrets) -> Scrubber:
        """A Scrubber from one secret, several, an existing Scrubber, or None."""
        if isinstance(secrets, Scrubber):
            return secrets
        if secrets is None or isinstance(secrets, str):
            return cls((secrets,))
        return cls(secrets)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MARK)
        for shape in _SHAPES:
            text = shape.sub(lambda m: m.group(1) + MARK, text)
        return text

    def value(self, value: Any) -> Any:
        """A copy of a nested payload (dicts, lists, tuples) with every string scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def exception_chain(self, exc: BaseException | None) -> None:
        """Scrub the string args (and SDK `.message`) of `exc` and its causes, in place:
        they end up in tracebacks when the host logs the mapped error."""
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            try:
                args = tuple(self.text(a) if isinstance(a, str) else a for a in exc.args)
                if args != exc.args:
                    exc.args = args
                message = getattr(exc, "message", None)
                if isinstance(message, str) and self.text(message) != message:
                    exc.message = self.text(message)  # type: ignore[attr-defined]
            except Exception:  # an exotic exception type: leave it as it is
                pass
            exc = exc.__cause__ or exc.__context__


# One secret, several, a Scrubber, or none.
Secrets = str | Iterable[str] | Scrubber | None
