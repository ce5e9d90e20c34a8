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
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amplifier_core.llm_errors import (
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    LLMError,
    LLMTimeoutError,
    ProviderUnavailableError,
    StreamError,
)
from amplifier_core.message_models import ChatRequest, ChatResponse, ToolCall
from amplifier_core.models import ModelInfo, ProviderInfo
from amplifier_core.utils.retry import RetryConfig, retry_with_backoff

from . import events as ev
from .config import (
    DEFAULT_NAME,
    ENV_API_KEY,
    ProviderConfig,
    info_defaults,
    parse_config,
    wizard_fields,
)
from .errors import describe_body, error_from_exception, prompt_overflows
from .events import EventSink, StreamEmitter, progress_payload, route_payload, usage_payload
from .redaction import Scrubber
from .reply.assemble import ResponseAssembler
from .reply.cost import SessionCost
from .reply.headers import header_metadata
from .reply.response import to_chat_response
from .reply.sse import iter_sse_batches
from .request.convert import ConversionError, build_request_body, dumps_body
from .request.tool_sequence import repair_tool_sequence
from .server.models import output_limit, parse_model_list
from .server.profiles import ServerProfile, apply_profile
from .server.rejections import Fix
from .server.state import ServerAwareness
from .transport import Transport, insecure_key_host

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

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
        self._scrubber = Scrubber(
            (
                self.config.api_key,
                *(v for k, v in self.config.headers.items() if _SECRET_HEADER.search(k)),
            )
        )
        self._events = EventSink(coordinator, self._scrubber)
        insecure_host = insecure_key_host(self.config)
        if insecure_host is not None:
            logger.warning(
                "[%s] the API key is sent over plain http to %s, readable by anyone on the "
                "network path; use https:// in base_url",
                self.name,
                insecure_host,
            )
        self._transport: Transport | None = None
        self._closed = False
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
        defaults = info_defaults(cfg)
        known = self.get_model_info()
        if known is not None:
            # context-simple falls back to these when get_model_info() gives nothing.
            defaults["context_window"] = known.context_window
            defaults["max_output_tokens"] = known.max_output_tokens
        return ProviderInfo(
            id=DEFAULT_NAME,
            display_name=display,
            credential_env_vars=[ENV_API_KEY],
            capabilities=["streaming", "tools", "json_mode"],
            defaults=defaults,
            config_fields=wizard_fields(),
        )

    # -- lifecycle --------------------------------------------------------------------

    def _client(self) -> Transport:
        if self._closed:
            raise ConfigurationError(
                f"the provider {self.name!r} was closed (its session ended, or close() was "
                "called); create or mount a new one to send requests",
                provider=self.name,
            )
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
        """Stop discovery and close the HTTP client; safe to call twice, bounded in time.

        A closed provider refuses requests (ConfigurationError) rather than quietly opening
        a new client that nothing would close.
        """
        self._closed = True
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
        """One chat completion: build the body, then send it in layers (deadline ->
        healing -> retrying -> one attempt -> read stream / read body).

        Keyword arguments the host passes beside the request (loop-streaming's goal loop:
        `model=`, a routing role's `reasoning_effort=`) fill what the request leaves
        unset; others (`extended_thinking=`) are accepted and ignored. However the call
        ends, its llm:request gets its llm:response ("ok", "error" or "cancelled").
        """
        request = _with_kwargs(request, kwargs)
        transport = self._client()
        model = request.model or self.config.default_model
        profile = await self.server_profile(model)
        limit = self._output_limit(request, model, await self._window(model, profile))
        stream = self.config.use_streaming and (request.metadata or {}).get("stream") is not False
        body = await self._request_body(request, model, stream, limit)
        call = self._new_call(model, stream, request.timeout)
        await self._emit_request(call, body, profile)
        try:
            response = await self._within_deadline(transport, call, request, body, profile)
        except BaseException as exc:
            await self._emit_failure(call, exc)
            raise
        await self._emit_success(call, response)
        return response

    async def _request_body(
        self, request: ChatRequest, model: str, stream: bool, max_tokens: int
    ) -> dict[str, Any]:
        """The wire body before server shaping, tool sequence repaired (reported)."""
        try:
            body = build_request_body(request, self.config, stream=stream, max_tokens=max_tokens)
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
        return body

    def _new_call(self, model: str, stream: bool, timeout: float | None) -> _Call:
        request_id = uuid.uuid4().hex
        active = stream and self._events.active
        loop_now = asyncio.get_running_loop().time()
        return _Call(
            model=model,
            request_id=request_id,
            stream=stream,
            started=time.monotonic(),
            timeout=timeout,
            deadline=None if timeout is None else loop_now + timeout,
            emitter=StreamEmitter(self._events, request_id) if active else None,
        )

    async def _within_deadline(
        self,
        transport: Transport,
        call: _Call,
        request: ChatRequest,
        body: dict[str, Any],
        profile: ServerProfile,
    ) -> ChatResponse:
        """The healing send, bounded by the request's own timeout (the whole call)."""
        try:
            async with asyncio.timeout_at(call.deadline) as scope:
                return await self._healing(transport, call, request, body, profile)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise self._deadline_error(call) from exc

    def _deadline_error(self, call: _Call) -> LLMTimeoutError:
        return LLMTimeoutError(
            f"request did not finish within its timeout of {call.timeout} s",
            provider=self.name,
            model=call.model,
        )

    async def _healing(
        self,
        transport: Transport,
        call: _Call,
        request: ChatRequest,
        body: dict[str, Any],
        profile: ServerProfile,
    ) -> ChatResponse:
        """Resend once per fix a rejection teaches (remembered for the model), and once
        without our default max_tokens when that is what overflowed the window."""
        healed: list[Fix] = []
        while True:
            sent = apply_profile(body, profile)
            try:
                response = await self._retrying(transport, call, sent, profile)
            except ContextLengthError as err:
                if not self._own_limit_overflowed(err, request, body):
                    raise
                body = {k: v for k, v in body.items() if k != "max_tokens"}
                continue
            except InvalidRequestError as err:
                healed.append(self._awareness.heal(err, sent, profile, len(healed), call.model))
                profile = await self.server_profile(call.model)
                continue
            response.degradation = response.degradation or self._awareness.degradation(
                body, sent, healed, call.model
            )
            return response

    async def _retrying(
        self, transport: Transport, call: _Call, sent: dict[str, Any], profile: ServerProfile
    ) -> ChatResponse:
        """Attempts under the kernel's backoff policy, with our fail-fast rules."""
        body = _SentBody.of(sent)

        async def attempt() -> ChatResponse:
            try:
                return await self._attempt(transport, call, body)
            except LLMError as err:
                self._fail_fast_on_long_retry_after(err)
                self._fail_fast_on_broken_tool_path(err, profile, body.offered)
                raise

        return await retry_with_backoff(
            attempt, self._retry_config(), on_retry=self._on_retry(call)
        )

    async def _attempt(self, transport: Transport, call: _Call, body: _SentBody) -> ChatResponse:
        """One HTTP exchange; its scope owns the stream's lifecycle and the errors."""
        assembler = self._assembler(body.offered)
        async with self._attempt_scope(call, assembler) as scope:
            async with transport.post_stream(CHAT_PATH, body.content) as http_response:
                scope.began = True
                if call.stream and not _whole_body(http_response.headers):
                    done = await self._read_stream(http_response, assembler, call, body)
                    await self._end_stream(assembler, call, done)
                else:
                    self._read_body(await http_response.aread(), assembler, call.model)
            return self._finish(assembler, call.model, http_response.headers)

    @asynccontextmanager
    async def _attempt_scope(
        self, call: _Call, assembler: ResponseAssembler
    ) -> AsyncIterator[_AttemptScope]:
        """However an attempt ends, what it raises is an LLMError (or the cancellation)
        and every block its stream started is ended or withdrawn from the UI."""
        emitter = call.emitter
        if emitter is not None:
            emitter.new_attempt()
        scope = _AttemptScope()
        try:
            yield scope
        except BaseException as exc:
            err = (
                exc
                if isinstance(exc, LLMError | asyncio.CancelledError)
                else self._map_exception(exc, call.model, streaming_started=scope.began)
            )
            if emitter is not None:
                # Text held back as a possible tool call is not shown for a failed reply.
                await emitter.abandon(self._ending(call, err), assembler.close(flush=False))
            if err is exc:
                raise
            raise err from exc

    def _ending(self, call: _Call, exc: BaseException) -> BaseException:
        """What ended a call, as the UI should hear it: a cancellation by our own
        deadline is the request timeout."""
        deadline = call.deadline
        if not isinstance(exc, asyncio.CancelledError) or deadline is None:
            return exc
        expired = asyncio.get_running_loop().time() >= deadline
        return self._deadline_error(call) if expired else exc

    async def _read_stream(
        self,
        http_response: httpx.Response,
        assembler: ResponseAssembler,
        call: _Call,
        body: _SentBody,
    ) -> bool:
        """Feed the SSE body to the assembler, emitting block events as they form and
        prompt progress as it is reported.

        True when the stream ended with [DONE], False at the end of the body.
        """
        emitter = call.emitter
        watch_progress = body.progress and self._events.active
        raw_decode = _JSON.raw_decode
        feed_chunk = assembler.feed_chunk
        # One async step per network read, not per line: see iter_sse_batches.
        batches = iter_sse_batches(http_response.aiter_bytes())
        async for batch in batches:
            for data in batch:
                if data == "[DONE]":
                    await _drain(batches)
                    return True
                # raw_decode skips json.loads' wrapper layers and two regex scans (a fifth
                # of the per-chunk CPU); _parse_chunk handles the rest.
                try:
                    chunk, end = raw_decode(data)
                except ValueError:
                    end = -1
                if end != len(data):
                    chunk = self._parse_chunk(data, call.model)
                block_events = feed_chunk(chunk)
                if block_events:
                    if emitter is not None:
                        await emitter.emit(block_events)
                elif watch_progress and type(chunk) is dict and "prompt_progress" in chunk:
                    await self._emit_progress(call, chunk["prompt_progress"])
        return False

    async def _end_stream(self, assembler: ResponseAssembler, call: _Call, done: bool) -> None:
        """A stream is complete with a finish_reason or with [DONE] (several hosted servers
        send no finish_reason); without either it was cut off."""
        if not assembler.saw_finish and not done:
            raise StreamError(
                "the stream ended before the server finished the response (no "
                "finish_reason, no [DONE]): the reply is truncated, usually because the "
                "server failed or the connection dropped",
                provider=self.name,
                model=call.model,
            )
        closing = assembler.close(complete=done)
        if closing and call.emitter is not None:
            await call.emitter.emit(closing)

    def _read_body(self, raw: bytes, assembler: ResponseAssembler, model: str) -> None:
        """A whole JSON reply: the server answered without streaming (or ignored
        stream=true), or a proxy answered 200 with a page, which is reported as such."""
        try:
            body = json.loads(raw)
        except ValueError:
            raise ProviderUnavailableError(
                "the server answered 200 but the body is not JSON: "
                f"{describe_body(raw.decode('utf-8', 'replace'))}",
                provider=self.name,
                model=model,
                status_code=200,
            ) from None
        assembler.feed_body(body)

    def _parse_chunk(self, data: str, model: str) -> Any:
        try:
            return json.loads(data)  # surrounding whitespace
        except ValueError:
            raise StreamError(
                f"the server sent a stream chunk that is not JSON: {data[:120]!r}",
                provider=self.name,
                model=model,
            ) from None

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

    def _assembler(self, offered: frozenset[str]) -> ResponseAssembler:
        return ResponseAssembler(offered_tools=offered, think_tags=self.config.think_tags)

    def _finish(
        self,
        assembler: ResponseAssembler,
        model: str,
        headers: Mapping[str, str],
    ) -> ChatResponse:
        """The ChatResponse, with what a router's headers tell about its route."""
        result = assembler.result()
        response = to_chat_response(
            result,
            provider_name=self.name,
            model=result.model or model,
            headers=headers,
            pricing=self.config.pricing,
        )
        told = header_metadata(headers, model)
        if told:
            response.metadata = {**(response.metadata or {}), **told}
        return response

    def _map_exception(
        self, exc: BaseException, model: str, *, streaming_started: bool = False
    ) -> LLMError:
        return error_from_exception(
            exc,
            provider=self.name,
            model=model,
            timeout=self.config.timeout,
            api_key=self._scrubber,
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

    def _on_retry(self, call: _Call) -> Any:
        async def on_retry(attempt: int, delay: float, err: LLMError) -> None:
            # The kernel jitters around Retry-After; the server's value is a floor.
            extra = (err.retry_after or 0.0) - delay
            await self._events.emit(
                ev.PROVIDER_RETRY,
                {
                    "provider": self.name,
                    "model": call.model,
                    "request_id": call.request_id,
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

    # -- call events ------------------------------------------------------------------

    async def _emit_request(
        self, call: _Call, body: Mapping[str, Any], profile: ServerProfile
    ) -> None:
        payload: dict[str, Any] = {
            "provider": self.name,
            "model": call.model,
            "request_id": call.request_id,
            "message_count": len(body["messages"]),
            "tool_count": len(body.get("tools") or ()),
            "stream": call.stream,
        }
        if self.config.raw:
            payload["raw"] = self._events.redact(apply_profile(body, profile))
        await self._events.emit(ev.LLM_REQUEST, payload)

    async def _emit_progress(self, call: _Call, progress: object) -> None:
        payload = {"provider": self.name, "model": call.model, "request_id": call.request_id}
        payload.update(progress_payload(progress))
        await self._events.emit(ev.PROMPT_PROGRESS, payload)

    def _response_event(self, call: _Call, status: str) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": call.model,
            "request_id": call.request_id,
            "status": status,
            "duration_ms": round((time.monotonic() - call.started) * 1000),
            "usage": {},
        }

    async def _emit_success(self, call: _Call, response: ChatResponse) -> None:
        self._session_cost.add(response.usage.cost_usd if response.usage else None)
        payload = self._response_event(call, "ok")
        payload["usage"] = usage_payload(response.usage)
        payload["finish_reason"] = response.finish_reason
        payload.update(route_payload(response.metadata))
        if self.config.raw:
            payload["raw"] = self._events.redact(response.model_dump(mode="json"))
        await self._events.emit(ev.LLM_RESPONSE, payload)

    async def _emit_failure(self, call: _Call, exc: BaseException) -> None:
        """Before the error (or the cancellation) propagates; never replaces it."""
        if isinstance(exc, asyncio.CancelledError):
            await self._events.emit(ev.LLM_RESPONSE, self._response_event(call, "cancelled"))
            return
        payload = self._response_event(call, "error")
        payload["error"] = {"type": type(exc).__name__, "msg": str(exc)}
        await self._events.emit(ev.LLM_RESPONSE, payload)


@dataclass(frozen=True, slots=True)
class _Call:
    """One complete() call: what each layer of the send path needs, passed explicitly."""

    model: str
    request_id: str
    stream: bool
    started: float  # time.monotonic(), for duration_ms
    timeout: float | None  # the request's own limit on the whole call, seconds
    deadline: float | None  # the same as event-loop time
    emitter: StreamEmitter | None  # None: not streaming, or nobody listens


@dataclass(frozen=True, slots=True)
class _SentBody:
    """One shaped body as sent, and what its reply is read against."""

    content: bytes
    offered: frozenset[str]  # tool names the model was offered (salvage looks for these)
    progress: bool  # prompt-progress chunks were asked for

    @classmethod
    def of(cls, sent: Mapping[str, Any]) -> _SentBody:
        return cls(dumps_body(sent), _tool_names(sent), sent.get("return_progress") is True)


@dataclass(slots=True)
class _AttemptScope:
    began: bool = False  # the response had begun: a dropped connection is a StreamError


def _whole_body(headers: Mapping[str, str]) -> bool:
    """A JSON (or HTML) answer to a streaming request: read it whole."""
    content_type = headers.get("content-type", "")
    return ("json" in content_type or "html" in content_type) and (
        "event-stream" not in content_type
    )
