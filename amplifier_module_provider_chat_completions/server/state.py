"""ServerAwareness: what the provider learns about its server, and the I/O to learn it.

Profile detection, context windows and self-healing. The decisions are pure functions in
profiles.py, detect.py, models.py and rejections.py; this class holds the state they feed
(detected profile, models body, windows, fixes remembered per model) and asks the server
through the provider's Transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from amplifier_core.llm_errors import ConfigurationError, ContextLengthError, InvalidRequestError
from amplifier_core.message_models import Degradation
from amplifier_core.models import ModelInfo

from ..config import DEFAULT_MODEL, ProviderConfig
from ..transport import Transport, response_headers, server_root
from . import detect
from .models import model_info
from .profiles import GENERIC, PROFILES, ServerProfile, profile_for, resolve_profile
from .rejections import Fix, diagnose_alternation, diagnose_rejection, rejection_text

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0  # detection and context-window GETs: small answers or nothing
MAX_HEALS = 3  # distinct self-healing resends per request
MAX_WINDOW_LOOKUPS = 16  # models whose missing window list_models asks other endpoints for
DISCOVERY_TIMEOUT = 10.0  # the background probe at mount: detection + one window lookup


class ServerAwareness:
    """Detects the server once, finds context windows, remembers fixes for rejections.

    `client` is the provider's lazy Transport getter (it raises ConfigurationError when
    there is no base_url or the provider was closed).
    """

    def __init__(self, config: ProviderConfig, client: Callable[[], Transport]) -> None:
        self._config = config
        self._client = client
        self._detected: ServerProfile | None = None
        self._detect_lock = asyncio.Lock()
        self._detect_failures = 0
        self._models_body: Any = None
        self._windows: dict[str, int | None] = {}
        # Per model: behind a proxy one model's rejection says nothing about another's.
        self._fixes: dict[str, dict[str, Fix]] = {}
        self._discovery: asyncio.Task[None] | None = None
        self._probed: dict[str, Any] = {}  # detection follow-up answers, by path

    @property
    def _name(self) -> str:
        return self._config.name

    # -- profile ----------------------------------------------------------------------

    async def server(self) -> ServerProfile:
        """The server family's profile: config `server`, else detected once."""
        return self._detected or await self._detect()

    async def profile(self, model: str) -> ServerProfile:
        """The resolved profile requests for `model` are shaped by (see resolve_profile)."""
        fixes = self._fixes.get(model, {}).values()
        return resolve_profile(
            await self.server(),
            model,
            changes={k: v for fix in fixes for k, v in fix.profile_changes.items()},
            drop=[name for fix in fixes for name in fix.drop],
        )

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
                        answer = await self.get_json(path)
                        # Kept: the same document often states the context window too.
                        self._probed[path] = answer
                        key = detect.classify_follow_up(path, answer) or key
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

    def start_discovery(self) -> None:
        """Detect the server and the default model's window in the background.

        Started at mount so the host's first turn already knows the window (context
        managers read it synchronously); bounded, and cancelled by stop_discovery().
        """
        if self._discovery is None:
            self._discovery = asyncio.get_running_loop().create_task(
                self._discover(), name=f"{self._name}-discovery"
            )

    async def _discover(self) -> None:
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                await self.model_info(self._config.default_model)
        except ConfigurationError:
            pass  # no base_url: complete() reports it
        except Exception:
            logger.debug("[%s] background discovery failed", self._name, exc_info=True)

    async def stop_discovery(self) -> None:
        task, self._discovery = self._discovery, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _await_discovery(self) -> None:
        # asyncio.wait, not await: a cancelled caller must not cancel the shared probe.
        task = self._discovery
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.wait({task})

    def remember_models(self, body: Any) -> None:
        """Keep a /models body list_models already fetched, so lookups need no second GET."""
        self._models_body = body

    def _resolve(self, model_id: str) -> str:
        """Single-model servers answer whatever the name: "default" means that model."""
        if model_id == DEFAULT_MODEL and self._models_body is not None:
            ids = [e.get("id") for e in detect.model_entries(self._models_body)]
            if len(ids) == 1 and isinstance(ids[0], str):
                return ids[0]
        return model_id

    def known_window(self, model_id: str) -> int | None:
        """The context window known now (config, or discovered): no I/O."""
        return self._config.context_window or self._windows.get(self._resolve(model_id))

    def known_model_info(self, model_id: str) -> ModelInfo | None:
        """ModelInfo from what is known now (no I/O); None while the window is unknown."""
        window = self.known_window(model_id)
        if not window:
            return None
        return model_info(self._resolve(model_id), window, self._config.max_tokens)

    async def window(self, model_id: str, profile: ServerProfile) -> int | None:
        """The model's context window: config, else asked of the server once per model.

        `profile` is the detected one: detection has read /models already, so a server
        that did not answer it is not asked again here (it is, on the next request).
        """
        if self._config.context_window:
            return self._config.context_window
        await self._await_discovery()
        if self._config.server == "auto":
            if self._models_body is None:
                return None  # detection got no /models answer: not now, next request
        elif self._models_body is None and "models" in profile.context_sources:
            # A configured profile skips detection, which is what reads /models.
            with contextlib.suppress(Exception):
                self._models_body = await self.get_json("/v1/models")
        return await self._context_window(self._resolve(model_id), profile)

    async def model_info(self, model_id: str) -> ModelInfo | None:
        """Asks the server: the model's window where it tells, or the config override.

        None when the server neither lists the model nor states a window for it.
        """
        window = await self.window(model_id, await self.server())
        model_id = self._resolve(model_id)
        ids = [e.get("id") for e in detect.model_entries(self._models_body)]
        if not window and model_id not in ids:
            return None
        return model_info(model_id, window, self._config.max_tokens)

    async def _context_window(self, model_id: str, profile: ServerProfile) -> int | None:
        if model_id in self._windows:
            return self._windows[model_id]
        window: int | None = None
        answered = False  # a server that did not answer at all may tell us next time
        for source in profile.context_sources:
            try:
                if source == "models":
                    if self._models_body is None:
                        continue
                    body = self._models_body
                else:
                    path = detect.context_source_path(source, model_id) or ""
                    body = self._probed.get(path)
                    if body is None:
                        body = await self.get_json(path)
                answered = True
                window = detect.context_window_from(source, body, model_id)
            except ConfigurationError:
                raise
            except Exception as exc:
                # An HTTP status is an answer ("not here"); a dropped connection is not.
                answered = answered or getattr(exc, "status_code", None) is not None
                logger.debug("[%s] no context window from %s", self._name, source, exc_info=True)
            if window:
                break
        if answered:
            self._windows[model_id] = window
        return window

    async def fill_context_windows(self, models: list[ModelInfo]) -> list[ModelInfo]:
        """Ask the server's other endpoints for windows /models did not state (first 16)."""
        out: list[ModelInfo] = []
        for n, info in enumerate(models):
            if info.context_window and not self._config.context_window:
                self._windows.setdefault(info.id, info.context_window)
            if info.context_window or n >= MAX_WINDOW_LOOKUPS:
                out.append(info)
                continue
            window = await self._context_window(info.id, await self.server())
            out.append(model_info(info.id, window, self._config.max_tokens) if window else info)
        return out

    # -- self-healing -----------------------------------------------------------------

    def heal(
        self,
        err: InvalidRequestError,
        sent: dict[str, Any],
        profile: ServerProfile,
        n: int,
        model: str,
    ) -> Fix:
        """The fix for a rejected request (remembered for `model`), or re-raise."""
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
        known = self._fixes.setdefault(model, {})
        if fix.key not in known:
            known[fix.key] = fix
            logger.warning(
                "[%s] the server rejected `%s` for %s; sending %s instead from now on (%s)",
                self._name,
                fix.parameter,
                model,
                "it as " + fix.actual if fix.profile_changes else "without it",
                err,
            )
        return fix

    def degradation(
        self, body: dict[str, Any], sent: dict[str, Any], healed: list[Fix], model: str
    ) -> Degradation | None:
        """What of the request the server did not get as asked (None: everything)."""
        notes: list[tuple[str, str, str]] = []
        known = self._fixes.get(model, {}).values()
        remembered = [f for f in known if f.lossy and f not in healed]
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
