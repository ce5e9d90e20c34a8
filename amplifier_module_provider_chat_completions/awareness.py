"""ServerAwareness: what the provider learns about its server, and the I/O to learn it.

Profile detection, context windows and self-healing. The decisions are pure functions in
profiles.py, detect.py, models.py and healing.py; this class holds the state they feed
(detected profile, models body, windows, remembered fixes) and asks the server through
the provider's Transport.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from amplifier_core.llm_errors import ConfigurationError, ContextLengthError, InvalidRequestError
from amplifier_core.message_models import Degradation
from amplifier_core.models import ModelInfo

from . import detect
from .config import ProviderConfig
from .healing import Fix, diagnose_alternation, diagnose_rejection, rejection_text
from .profiles import GENERIC, PROFILES, ServerProfile, profile_for
from .transport import Transport, response_headers, server_root

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0  # detection and context-window GETs: small answers or nothing
MAX_HEALS = 3  # distinct self-healing resends per request
MAX_WINDOW_LOOKUPS = 16  # models whose missing window list_models asks other endpoints for


class ServerAwareness:
    """Detects the server once, finds context windows, remembers fixes for rejections.

    `client` is the provider's lazy Transport getter (it raises ConfigurationError when
    there is no base_url, and makes a new Transport after close()).
    """

    def __init__(self, config: ProviderConfig, client: Callable[[], Transport]) -> None:
        self._config = config
        self._client = client
        self._detected: ServerProfile | None = None
        self._detect_lock = asyncio.Lock()
        self._detect_failures = 0
        self._models_body: Any = None
        self._windows: dict[str, int | None] = {}
        self._fixes: dict[str, Fix] = {}

    @property
    def _name(self) -> str:
        return self._config.name

    # -- profile ----------------------------------------------------------------------

    async def profile(self) -> ServerProfile:
        """The server's profile (config `server`, else detected once) plus healed changes."""
        base = self._detected or await self._detect()
        changes = {k: v for fix in self._fixes.values() for k, v in fix.profile_changes.items()}
        return replace(base, **changes) if changes else base

    def removed_fields(self) -> set[str]:
        """Request fields the server rejected, left out of every body from now on."""
        return {name for fix in self._fixes.values() for name in fix.drop}

    async def _detect(self) -> ServerProfile:
        if self._config.server != "auto":
            profile = profile_for(self._config.server)
            if profile is None:
                logger.warning(
                    "[%s] unknown server %r (known: %s); using the generic profile",
                    self._name,
                    self._config.server,
                    ", ".join(sorted(PROFILES)),
                )
                profile = GENERIC
            self._detected = profile
            return profile
        # One probe even when many first requests arrive together.
        async with self._detect_lock:
            if self._detected is not None:
                return self._detected
            key, final = await self._fingerprint()
            profile = PROFILES.get(key, GENERIC)
            if final:
                self._detected = profile
                if profile is GENERIC:
                    logger.info(
                        "[%s] server not identified; using the generic profile "
                        "(set `server` to choose one)",
                        self._name,
                    )
                else:
                    logger.info("[%s] server detected as %s", self._name, profile.title)
            return profile

    async def _fingerprint(self) -> tuple[str, bool]:
        """(profile key, whether to keep it); any failure means the generic profile."""
        try:
            async with asyncio.timeout(2 * PROBE_TIMEOUT + 1):
                response = await self._client().get("/models", timeout=PROBE_TIMEOUT)
                headers = response_headers(response)
                body = json.loads(response.content)
                self._models_body = body
                key = detect.classify(body, headers)
                path = detect.follow_up(body, headers)
                if path is not None:
                    try:
                        key = detect.classify_follow_up(path, await self.get_json(path)) or key
                    except Exception:
                        logger.debug("[%s] probe %s failed", self._name, path, exc_info=True)
            return key, True
        except ConfigurationError:
            raise
        except Exception:
            # The server may not be up yet: try again on the next request, once.
            logger.debug("[%s] server detection failed", self._name, exc_info=True)
            self._detect_failures += 1
            return GENERIC.key, self._detect_failures >= 2

    async def get_json(self, path: str) -> Any:
        """GET a small JSON document: "/v1/..." under base_url, anything else from the root."""
        transport = self._client()
        if path.startswith("/v1/"):
            url = path[len("/v1") :]
        else:
            url = server_root(self._config.base_url) + path
        response = await transport.get(url, timeout=PROBE_TIMEOUT)
        return json.loads(response.content)

    # -- models and context windows ---------------------------------------------------

    def remember_models(self, body: Any) -> None:
        """Keep a /models body list_models already fetched, so lookups need no second GET."""
        self._models_body = body

    async def model_info(self, model_id: str) -> ModelInfo | None:
        """The model's runtime context window where the server tells, or the config override.

        None when the server neither lists the model nor states a window for it.
        """
        if self._models_body is None:
            try:
                self._models_body = await self.get_json("/v1/models")
            except ConfigurationError:
                raise
            except Exception:
                logger.debug("[%s] could not list models", self._name, exc_info=True)
        ids = [e.get("id") for e in detect.model_entries(self._models_body)]
        if model_id == "default" and len(ids) == 1 and isinstance(ids[0], str):
            model_id = ids[0]  # single-model servers answer whatever the name
        window = self._config.context_window or await self._context_window(model_id)
        if not window and model_id not in ids:
            return None
        return ModelInfo(
            id=model_id,
            display_name=model_id,
            context_window=window or 0,
            max_output_tokens=self._config.max_tokens,
            capabilities=["tools", "streaming", "json_mode"],
        )

    async def _context_window(self, model_id: str) -> int | None:
        if model_id in self._windows:
            return self._windows[model_id]
        profile = await self.profile()
        window: int | None = None
        for source in profile.context_sources:
            try:
                if source == "models":
                    if self._models_body is None:
                        self._models_body = await self.get_json("/v1/models")
                    body = self._models_body
                else:
                    body = await self.get_json(detect.context_source_path(source, model_id) or "")
                window = detect.context_window_from(source, body, model_id)
            except ConfigurationError:
                raise
            except Exception:
                logger.debug("[%s] no context window from %s", self._name, source, exc_info=True)
            if window:
                break
        self._windows[model_id] = window
        return window

    async def fill_context_windows(self, models: list[ModelInfo]) -> list[ModelInfo]:
        """Ask the server's other endpoints for windows /models did not state (first 16)."""
        out: list[ModelInfo] = []
        for n, info in enumerate(models):
            if info.context_window or n >= MAX_WINDOW_LOOKUPS:
                out.append(info)
                continue
            window = await self._context_window(info.id)
            out.append(info.model_copy(update={"context_window": window}) if window else info)
        return out

    # -- self-healing -----------------------------------------------------------------

    def heal(
        self, err: InvalidRequestError, sent: dict[str, Any], profile: ServerProfile, n: int
    ) -> Fix:
        """The fix for a rejected request (remembered), or re-raise when there is none."""
        if isinstance(err, ContextLengthError) or n >= MAX_HEALS:
            raise err
        text = rejection_text(err)
        fix = diagnose_rejection(err.status_code, text, sent, profile) or diagnose_alternation(
            text, profile
        )
        if fix is None:
            raise err
        if fix.hint is not None:
            if fix.hint in str(err):
                raise err
            raise InvalidRequestError(
                f"{err}; {fix.hint}",
                provider=err.provider,
                model=err.model,
                status_code=err.status_code,
            ) from err
        # Judged against what this request sent, so concurrent requests that were rejected
        # before another one remembered the fix still resend (and do not warn again).
        changed = any(getattr(profile, k, v) != v for k, v in fix.profile_changes.items())
        if not changed and not set(fix.drop) & set(sent):
            raise err  # the same rejection again: resending would loop
        if fix.key not in self._fixes:
            self._fixes[fix.key] = fix
            logger.warning(
                "[%s] the server rejected `%s`; sending %s instead from now on (%s)",
                self._name,
                fix.parameter,
                "it as " + fix.actual if fix.profile_changes else "without it",
                err,
            )
        return fix

    def degradation(
        self, body: dict[str, Any], sent: dict[str, Any], healed: list[Fix]
    ) -> Degradation | None:
        """What of the request the server did not get as asked (None: everything)."""
        notes: list[tuple[str, str, str]] = []
        remembered = [f for f in self._fixes.values() if f.lossy and f not in healed]
        for fix in [*healed, *remembered]:
            if any(name in body for name in (fix.drop or (fix.parameter,))):
                notes.append((fix.parameter, fix.actual, "the server rejected it"))
        dropped_format = "response_format" in body and "response_format" not in sent
        if dropped_format and all(name != "response_format" for name, _, _ in notes):
            title = (self._detected or GENERIC).title
            notes.append(("response_format", "omitted", f"{title} does not support it"))
        if not notes:
            return None
        return Degradation(
            requested=", ".join(name for name, _, _ in notes),
            actual="; ".join(f"{name}: {actual}" for name, actual, _ in notes),
            reason="; ".join(f"{name}: {reason}" for name, _, reason in notes),
        )
