"""ChatCompletionsProvider: the Amplifier provider over any Chat Completions server.

I/O lives here, in server/state.py (server probes) and in transport.py; every conversion is
a pure function elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from amplifier_core.llm_errors import (
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    InvalidToolCallError,
    LLMError,
    LLMTimeoutError,
    ProviderUnavailableError,
    StreamError,
)
from amplifier_core.message_models import ChatRequest, ChatResponse, ToolCall
from amplifier_core.models import ConfigField, ModelInfo, ProviderInfo
from amplifier_core.utils.retry import RetryConfig, retry_with_backoff

from . import events as ev
from .config import ProviderConfig, parse_config
from .errors import (
    describe_body,
    error_from_exception,
    error_from_payload,
    prompt_overflows,
    scrub_exception_chain,
)
from .events import EventSink, StreamEmitter, usage_payload
from .reply.arguments import ArgumentsError
from .reply.assemble import InBandError, ResponseAssembler
from .reply.cost import SessionCost
from .reply.response import to_chat_response
from .reply.sse import iter_sse_batches
from .request.convert import ConversionError, build_request_body, dumps_body
from .request.tool_sequence import repair_tool_sequence
from .server.models import output_limit, parse_model_list
from .server.profiles import ServerProfile, apply_profile
from .server.rejections import Fix
from .server.state import ServerAwareness
from .transport import Transport, insecure_key_host

logger = logging.getLogger(__name__)

DEFAULT_NAME = "chat-completions"
# What amplifier-app-cli passes as base_url when its settings hold none.
CLI_NO_BASE_URL = "http://placeholder"
DISPLAY_NAME = "OpenAI-Compatible"
CHAT_PATH = "/chat/completions"
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)
# After [DONE], how long to wait for the end of the body (normally already received) so
# the connection can go back to the pool instead of being closed.
DRAIN_TIMEOUT = 0.05
# A models endpoint that does not exist: the server lists nothing, it is not down.
_NO_MODELS_ENDPOINT = frozenset({404, 405, 501})
WINDOW_LOOKUP_TIMEOUT = 8.0  # a slow probe costs the first request this much at most
_JSON = json.JSONDecoder()  # the decoder json.loads uses, for its raw_decode


def _tool_names(body: Mapping[str, Any]) -> frozenset[str]:
    """Names of the tools a request body offers (for salvaging calls the server missed)."""
    names: list[str] = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            names.append(name)
    return frozenset(names)


def _with_kwargs(request: ChatRequest, kwargs: Mapping[str, Any]) -> ChatRequest:
    update = {
        name: kwargs[name]
        for name in ("model", "reasoning_effort")
        if getattr(request, name) is None and isinstance(kwargs.get(name), str) and kwargs[name]
    }
    return request.model_copy(update=update) if update else request


async def _drain(batches: AsyncIterator[list[str]]) -> None:
    """Read what follows [DONE]; a server that holds the stream open costs only its
    connection (closed when the response is), never the reply."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for _ in batches:
                pass
    except Exception:
        logger.debug("stream did not end cleanly after [DONE]", exc_info=True)


class ApiKeyWithoutBaseUrl(ConfigurationError, TypeError):
    """api_key= given with no base_url anywhere: a TypeError for the CLI's constructor probe
    (it moves on to the form that carries base_url), a ConfigurationError for everyone else."""


class ChatCompletionsProvider:
    """Amplifier provider for servers speaking the OpenAI Chat Completions wire format.

    Values given as keywords fill what `config` leaves unset; validation is the same as
    mount()'s. A missing base_url is allowed (the setup wizard constructs the class just
    to call get_info()); complete() and list_models() then raise a ConfigurationError.

    amplifier-app-cli (provider_loader._try_instantiate_provider) builds the class for
    `provider test` and the model picker by trying, in order, (api_key=, config={}),
    (base_url=, api_key=, config={}), (base_url=, config={}), (host=, config={}),
    (config={}) and (), catching TypeError; only base_url and api_key come from the stored
    settings, and "http://placeholder" stands for "none stored". So api_key= without any
    base_url is refused with ApiKeyWithoutBaseUrl (a TypeError): the first form would
    otherwise win and lose the instance's own server (the CLI then uses the second form,
    which carries it).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        config: Mapping[str, Any] | None = None,
        coordinator: Any = None,
        **_ignored: Any,
    ) -> None:
        if config is not None and not isinstance(config, Mapping):
            # parse_config reports the wrong shape as a ConfigurationError (dict() would
            # raise TypeError/ValueError instead).
            parse_config(config, require_base_url=False)
        try:
            merged: dict[str, Any] = dict(config or {})
        except Exception as exc:  # a Mapping whose methods raise
            raise ConfigurationError(
                f"invalid provider config: could not read settings ({type(exc).__name__})"
            ) from exc
        if api_key is not None and not base_url and not merged.get("base_url"):
            raise ApiKeyWithoutBaseUrl(
                "ChatCompletionsProvider(api_key=...) needs base_url= (or config['base_url'])"
            )
        if base_url == CLI_NO_BASE_URL:
            base_url = None  # the CLI had none stored: the environment may fill it
        if base_url and not merged.get("base_url"):
            merged["base_url"] = base_url
        if api_key and not merged.get("api_key"):
            merged["api_key"] = api_key
        self.config: ProviderConfig = parse_config(merged, require_base_url=False)
        self.coordinator = coordinator
        self.priority = self.config.priority
        # The key and credential-like header values: scrubbed from events and errors even
        # when a server echoes them back.
        self._secrets: tuple[str, ...] = (
            self.config.api_key,
            *(v for k, v in self.config.headers.items() if _SECRET_HEADER.search(k)),
        )
        self._events = EventSink(coordinator, secrets=self._secrets)
        insecure_host = insecure_key_host(self.config)
        if insecure_host is not None:
            logger.warning(
                "[%s] the API key is sent over plain http to %s, readable by anyone on the "
                "network path; use https:// in base_url",
                self.name,
                insecure_host,
            )
        self._transport: Transport | None = None
        self._session_cost = SessionCost()
        # Detected once, healed as we go; asks the server through self._client().
        self._awareness = ServerAwareness(self.config, self._client)

    # -- identity ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"ChatCompletionsProvider(name={self.name!r}, base_url={self.config.base_url!r})"

    @property
    def default_model(self) -> str:
        """The configured model (the CLI reports it in session metadata and JSON output)."""
        return self.config.default_model

    def get_info(self) -> ProviderInfo:
        """Provider metadata for the host and its setup wizard; makes no network call."""
        cfg = self.config
        display = DISPLAY_NAME if cfg.name == DEFAULT_NAME else f"{DISPLAY_NAME} ({cfg.name})"
        defaults: dict[str, Any] = {
            "model": cfg.default_model,
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
            "timeout": cfg.timeout,
            "max_retries": cfg.max_retries,
            "use_streaming": cfg.use_streaming,
        }
        known = self.get_model_info()
        if known is not None:
            # context-simple falls back to these when get_model_info() gives nothing.
            defaults["context_window"] = known.context_window
            defaults["max_output_tokens"] = known.max_output_tokens
        return ProviderInfo(
            id=DEFAULT_NAME,
            display_name=display,
            credential_env_vars=["CHAT_COMPLETIONS_API_KEY"],
            capabilities=["streaming", "tools", "json_mode"],
            defaults=defaults,
            config_fields=[
                # No env_var: the wizard would store every instance's URL in that one
                # variable, so a second instance would repoint the first. mount() still
                # reads CHAT_COMPLETIONS_BASE_URL when config has no base_url.
                ConfigField(
                    id="base_url",
                    display_name="Server URL",
                    field_type="text",
                    prompt="Base URL of the OpenAI-compatible server (ends in /v1)",
                    required=True,
                    default="http://localhost:8080/v1",
                ),
                ConfigField(
                    id="api_key",
                    display_name="API key",
                    field_type="secret",
                    prompt="API key (leave blank for local servers that need none)",
                    env_var="CHAT_COMPLETIONS_API_KEY",
                    required=False,
                ),
            ],
        )

    # -- lifecycle --------------------------------------------------------------------

    def _client(self) -> Transport:
        if self._transport is None:
            if not self.config.base_url:
                raise ConfigurationError(
                    "no base_url: set `base_url` in the provider config or the "
                    "CHAT_COMPLETIONS_BASE_URL environment variable "
                    "(e.g. http://localhost:8080/v1)",
                    provider=self.name,
                )
            self._transport = Transport(self.config)
        return self._transport

    def start(self) -> None:
        """mount() calls this once: register with the host, start learning the server.

        The session's running cost goes on the `session.cost` channel and the stream
        events on `observability.events`, so hooks-logging records them.
        """
        register = getattr(self.coordinator, "register_contributor", None)
        if callable(register):
            register("session.cost", self.name, self._session_cost.contribution)
            register("observability.events", self.name, ev.observable_events)
        if self.config.base_url:
            self._awareness.start_discovery()

    async def close(self) -> None:
        """Stop discovery and close the HTTP client; safe to call twice, bounded in time."""
        await self._awareness.stop_discovery()
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                await asyncio.wait_for(transport.aclose(), timeout=5.0)
            except (TimeoutError, Exception):
                logger.debug("closing the HTTP client did not finish cleanly", exc_info=True)

    # -- models -----------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        """GET {base_url}/models.

        Raises the LLMError that says why when the server cannot be used (down, wrong
        key, failing): `amplifier provider test` reports that as a failure, and the setup
        wizard shows it and still offers free-text model entry. A server without a models
        endpoint (404/405/501) or with an unreadable listing gives [].
        """
        cfg = self.config
        try:
            response = await self._client().get("/models", timeout=min(cfg.timeout, 15.0))
        except Exception as exc:
            err = self._map_exception(exc, cfg.default_model)
            if err.status_code in _NO_MODELS_ENDPOINT:
                logger.info("[%s] the server has no models endpoint: %s", self.name, err)
                return []
            raise err from exc
        try:
            body = json.loads(response.content)
        except ValueError:
            logger.warning("[%s] the models listing is not JSON; listing none", self.name)
            return []
        self._awareness.remember_models(body)
        models = parse_model_list(
            body,
            configured_model=cfg.default_model,
            filtered=cfg.filtered,
            max_output_tokens=cfg.max_tokens,
            context_window_override=cfg.context_window,
        )
        return await self._awareness.fill_context_windows(models)

    def get_model_info(self, model_id: str | None = None) -> ModelInfo | None:
        """The context window and output limit known now: config or discovery; no I/O.

        Synchronous because context managers call it without await. None until the
        window is known (discovery starts at mount; complete() also learns it).
        """
        return self._awareness.known_model_info(model_id or self.config.default_model)

    async def fetch_model_info(self, model_id: str | None = None) -> ModelInfo | None:
        """Ask the server: the model's runtime window where it tells, or the override.

        None when the server neither lists the model nor states a window for it.
        """
        return await self._awareness.model_info(model_id or self.config.default_model)

    # -- server awareness -------------------------------------------------------------

    @property
    def awareness(self) -> ServerAwareness:
        """Detection, context windows and healing state (the doctor probes through it)."""
        return self._awareness

    async def server_profile(self, model: str | None = None) -> ServerProfile:
        """The profile requests for `model` (default: the configured one) are shaped by:
        the server's (config `server`, else detected once), the model's traits, its fixes."""
        return await self._awareness.profile(model or self.config.default_model)

    # -- completion -------------------------------------------------------------------

    def parse_tool_calls(self, response: ChatResponse) -> list[ToolCall]:
        return list(response.tool_calls or [])

    async def complete(self, request: ChatRequest, **kwargs: Any) -> ChatResponse:
        """One chat completion.

        Keyword arguments the host passes beside the request (loop-streaming's goal loop:
        `model=`, a routing role's `reasoning_effort=`) fill what the request leaves
        unset; others (`extended_thinking=`) are accepted and ignored.
        """
        request = _with_kwargs(request, kwargs)
        cfg = self.config
        transport = self._client()
        metadata = request.metadata or {}
        stream = cfg.use_streaming and metadata.get("stream") is not False
        model = request.model or cfg.default_model
        profile = await self.server_profile(model)
        max_tokens = self._output_limit(request, model, await self._window(model, profile))

        try:
            body = build_request_body(request, cfg, stream=stream, max_tokens=max_tokens)
            body["messages"], repaired, dropped = repair_tool_sequence(body["messages"])
        except ConversionError as exc:
            # Names the message index; never retried (the same history fails the same way).
            raise InvalidRequestError(str(exc), provider=self.name, model=model) from exc
        except Exception as exc:
            raise InvalidRequestError(
                f"cannot build the request from these messages: {type(exc).__name__}: {exc}",
                provider=self.name,
                model=model,
            ) from exc
        if repaired or dropped:
            await self._events.emit(
                ev.TOOL_SEQUENCE_REPAIRED,
                {
                    "provider": self.name,
                    "model": model,
                    "repaired_count": len(repaired) + len(dropped),
                    "repaired_tool_ids": [*repaired, *dropped],
                },
            )
        sent = apply_profile(body, profile)
        content = dumps_body(sent)

        request_id = uuid.uuid4().hex
        request_event: dict[str, Any] = {
            "provider": self.name,
            "model": model,
            "request_id": request_id,
            "message_count": len(body["messages"]),
            "tool_count": len(body.get("tools") or ()),
            "stream": stream,
        }
        if cfg.raw:
            request_event["raw"] = self._events.redact(sent)
        await self._events.emit(ev.LLM_REQUEST, request_event)

        emitter = (
            StreamEmitter(self._events, request_id) if stream and self._events.active else None
        )

        async def attempt() -> ChatResponse:
            offered = _tool_names(sent)  # what the model was offered, after healing
            try:
                if stream:
                    return await self._stream_once(
                        transport, content, model, emitter, offered=offered
                    )
                return await self._post_once(transport, content, model, offered=offered)
            except LLMError as err:
                self._fail_fast_on_long_retry_after(err)
                self._fail_fast_on_broken_tool_path(err, profile, offered)
                raise

        started = time.monotonic()
        try:
            async with asyncio.timeout(request.timeout):
                healed: list[Fix] = []
                while True:
                    try:
                        response = await retry_with_backoff(
                            attempt, self._retry_config(), on_retry=self._on_retry(model)
                        )
                        break
                    except ContextLengthError as err:
                        if not self._own_limit_overflowed(err, request, body):
                            raise
                        # Our default output limit did not fit beside this prompt: resend
                        # once without it, so the server allows what room there is.
                        body = {k: v for k, v in body.items() if k != "max_tokens"}
                        sent = apply_profile(body, profile)
                        content = dumps_body(sent)
                    except InvalidRequestError as err:
                        # Self-healing: resend once per distinct fix the rejection allows.
                        fix = self._awareness.heal(err, sent, profile, len(healed), model)
                        healed.append(fix)
                        profile = await self.server_profile(model)
                        sent = apply_profile(body, profile)
                        content = dumps_body(sent)
                response.degradation = response.degradation or self._awareness.degradation(
                    body, sent, healed, model
                )
        except TimeoutError as exc:
            err = LLMTimeoutError(
                f"request did not finish within its timeout of {request.timeout} s",
                provider=self.name,
                model=model,
            )
            await self._emit_response_error(model, request_id, started, err)
            raise err from exc
        except LLMError as err:
            await self._emit_response_error(model, request_id, started, err)
            raise

        self._session_cost.add(response.usage.cost_usd if response.usage else None)
        response_event: dict[str, Any] = {
            "provider": self.name,
            "model": model,
            "request_id": request_id,
            "status": "ok",
            "duration_ms": round((time.monotonic() - started) * 1000),
            "usage": usage_payload(response.usage),
            "finish_reason": response.finish_reason,
        }
        if cfg.raw:
            response_event["raw"] = self._events.redact(response.model_dump(mode="json"))
        await self._events.emit(ev.LLM_RESPONSE, response_event)
        return response

    async def _window(self, model: str, profile: ServerProfile) -> int | None:
        """The model's context window, learned once per model and bounded in time."""
        try:
            async with asyncio.timeout(WINDOW_LOOKUP_TIMEOUT):
                return await self._awareness.window(model, profile)
        except ConfigurationError:
            raise
        except Exception:
            logger.debug("[%s] context window lookup failed", self.name, exc_info=True)
            return None

    def _output_limit(self, request: ChatRequest, model: str, window: int | None) -> int:
        """max_tokens for this request: the caller's, or our default capped by the window."""
        wanted = request.max_output_tokens
        if wanted is None:
            return output_limit(self.config.max_tokens, window)
        if window and wanted >= window:
            raise InvalidRequestError(
                f"max_output_tokens={wanted} cannot fit the context window of {model} "
                f"({window} tokens, prompt included): ask for fewer output tokens",
                provider=self.name,
                model=model,
            )
        return wanted

    @staticmethod
    def _own_limit_overflowed(
        err: ContextLengthError, request: ChatRequest, body: Mapping[str, Any]
    ) -> bool:
        """Whether an overflow may be our default max_tokens's doing, not the prompt's."""
        return (
            request.max_output_tokens is None
            and "max_tokens" in body
            and prompt_overflows(str(err)) is not True
        )

    async def _post_once(
        self,
        transport: Transport,
        content: bytes,
        model: str,
        *,
        offered: frozenset[str] = frozenset(),
    ) -> ChatResponse:
        try:
            async with transport.post_stream(CHAT_PATH, content) as http_response:
                raw = await http_response.aread()
            body = self._parse_json_body(raw, model)
            if isinstance(body, dict) and body.get("error") and not body.get("choices"):
                raise InBandError(body)
            assembler = self._assembler(offered)
            assembler.feed_body(body)
            return self._finish(assembler, model, http_response.headers)
        except LLMError:
            raise
        except Exception as exc:
            raise self._map_exception(exc, model) from exc

    async def _stream_once(
        self,
        transport: Transport,
        content: bytes,
        model: str,
        emitter: StreamEmitter | None,
        *,
        offered: frozenset[str] = frozenset(),
    ) -> ChatResponse:
        assembler = self._assembler(offered)
        if emitter is not None:
            emitter.new_attempt()
        got_chunk = False  # a drop after the first chunk is a StreamError, not NetworkError
        try:
            async with transport.post_stream(CHAT_PATH, content) as http_response:
                content_type = http_response.headers.get("content-type", "")
                whole_body = "json" in content_type or "html" in content_type
                if whole_body and "event-stream" not in content_type:
                    # The server ignored stream=true and answered with one JSON body, or a
                    # proxy answered 200 with an HTML page: report the page, not "truncated".
                    body = self._parse_json_body(await http_response.aread(), model)
                    if isinstance(body, dict) and body.get("error") and not body.get("choices"):
                        raise InBandError(body)
                    assembler.feed_body(body)
                    return self._finish(assembler, model, http_response.headers)
                raw_decode = _JSON.raw_decode
                feed_chunk = assembler.feed_chunk
                done = False
                # One async step per network read, not per line: see iter_sse_batches.
                batches = iter_sse_batches(http_response.aiter_bytes())
                async for batch in batches:
                    for data in batch:
                        if data == "[DONE]":
                            done = True
                            break
                        # raw_decode skips json.loads' wrapper layers and two regex scans
                        # (a fifth of the per-chunk CPU); json.loads handles the rest.
                        try:
                            chunk, end = raw_decode(data)
                        except ValueError:
                            end = -1
                        if end != len(data):
                            try:
                                chunk = json.loads(data)  # surrounding whitespace
                            except ValueError:
                                raise StreamError(
                                    "the server sent a stream chunk that is not JSON: "
                                    f"{data[:120]!r}",
                                    provider=self.name,
                                    model=model,
                                ) from None
                        got_chunk = True
                        block_events = feed_chunk(chunk)
                        if block_events and emitter is not None:
                            await emitter.emit(block_events)
                    if done:
                        break
                if done:
                    await _drain(batches)
            if not assembler.saw_finish:
                raise StreamError(
                    "the stream ended before the server finished the response (no "
                    "finish_reason): the reply is truncated, usually because the server "
                    "failed or the connection dropped",
                    provider=self.name,
                    model=model,
                )
            closing = assembler.close()
            if closing and emitter is not None:
                await emitter.emit(closing)
            return self._finish(assembler, model, http_response.headers)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = (
                exc
                if isinstance(exc, LLMError)
                else self._map_exception(exc, model, streaming_started=got_chunk)
            )
            if emitter is not None:
                if emitter.emitted_delta:
                    await emitter.aborted(err)
                else:
                    # Close blocks that started (a tool_use start) without deltas; text held
                    # back as a possible tool call is not shown for a failed reply.
                    await emitter.emit(assembler.close(flush=False))
            if err is exc:
                raise
            raise err from exc

    def _assembler(self, offered: frozenset[str]) -> ResponseAssembler:
        return ResponseAssembler(offered_tools=offered, think_tags=self.config.think_tags)

    def _finish(
        self, assembler: ResponseAssembler, model: str, headers: Mapping[str, str]
    ) -> ChatResponse:
        result = assembler.result()
        return to_chat_response(
            result,
            provider_name=self.name,
            model=result.model or model,
            headers=headers,
            pricing=self.config.pricing,
        )

    def _parse_json_body(self, raw: bytes, model: str) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise ProviderUnavailableError(
                "the server answered 200 but the body is not JSON: "
                f"{describe_body(raw.decode('utf-8', 'replace'))}",
                provider=self.name,
                model=model,
                status_code=200,
            ) from None

    def _map_exception(
        self, exc: BaseException, model: str, *, streaming_started: bool = False
    ) -> LLMError:
        if isinstance(exc, LLMError):
            return exc
        api_key = self._secrets
        # The original becomes __cause__, printed with every traceback: a server that
        # echoed the key back must not get it into the host's logs that way.
        scrub_exception_chain(exc, api_key)
        if isinstance(exc, InBandError):
            return error_from_payload(exc.payload, provider=self.name, model=model, api_key=api_key)
        if isinstance(exc, ArgumentsError):
            err = InvalidToolCallError(
                str(exc),
                tool_name=exc.tool_name,
                raw_arguments=exc.raw,
                provider=self.name,
                model=model,
            )
            partial = exc.partial
            # The turn's text, thinking and good calls survive a bad call.
            err.partial_response = (  # type: ignore[attr-defined]
                None
                if partial is None
                else to_chat_response(
                    partial, provider_name=self.name, model=partial.model or model
                )
            )
            return err
        return error_from_exception(
            exc,
            provider=self.name,
            model=model,
            timeout=self.config.timeout,
            api_key=api_key,
            streaming_started=streaming_started,
        )

    # -- retries ----------------------------------------------------------------------

    def _retry_config(self) -> RetryConfig:
        cfg = self.config
        return RetryConfig(
            max_retries=cfg.max_retries,
            initial_delay=cfg.min_retry_delay,
            max_delay=cfg.max_retry_delay,
        )

    def _fail_fast_on_broken_tool_path(
        self, err: LLMError, profile: ServerProfile, offered: Collection[str]
    ) -> None:
        """A server whose tool path is known broken fails the same way every time."""
        if (
            offered
            and profile.tools_fail_server_side
            and isinstance(err, ProviderUnavailableError)
            and profile.tools_hint not in str(err)
        ):
            err.retryable = False
            err.args = (f"the server failed on a tool-call request: {err} ({profile.tools_hint})",)

    def _fail_fast_on_long_retry_after(self, err: LLMError) -> None:
        """A Retry-After beyond max_retry_delay would stall the session: fail now."""
        limit = self.config.max_retry_delay
        if err.retryable and err.retry_after is not None and err.retry_after > limit:
            err.retryable = False
            err.args = (
                f"{err} (the server asked to retry after {err.retry_after:g} s, longer "
                f"than max_retry_delay {limit:g} s; raise max_retry_delay to wait)",
            )

    def _on_retry(self, model: str) -> Any:
        async def on_retry(attempt: int, delay: float, err: LLMError) -> None:
            # The kernel jitters around Retry-After; the server's value is a floor.
            extra = (err.retry_after or 0.0) - delay
            await self._events.emit(
                ev.PROVIDER_RETRY,
                {
                    "provider": self.name,
                    "model": model,
                    "attempt": attempt,
                    "max_retries": self.config.max_retries,
                    "delay": max(delay, err.retry_after or 0.0),
                    "retry_after": err.retry_after,
                    "error_type": type(err).__name__,
                    "error_message": str(err),
                },
            )
            logger.info(
                "[%s] retry %d/%d in %.1f s after %s: %s",
                self.name,
                attempt,
                self.config.max_retries,
                max(delay, err.retry_after or 0.0),
                type(err).__name__,
                err,
            )
            if extra > 0:
                await asyncio.sleep(extra)

        return on_retry

    async def _emit_response_error(
        self, model: str, request_id: str, started: float, err: LLMError
    ) -> None:
        await self._events.emit(
            ev.LLM_RESPONSE,
            {
                "provider": self.name,
                "model": model,
                "request_id": request_id,
                "status": "error",
                "duration_ms": round((time.monotonic() - started) * 1000),
                "usage": {},
                "error": {"type": type(err).__name__, "msg": str(err)},
            },
        )
