"""More than one server: real llama-servers behind LiteLLM's router, one provider instance.

Three llama-servers (the tiny scripted model) are deployments of one model group in a real
LiteLLM proxy (litellm_router.py). Twenty Amplifier-style conversations (three streamed
turns each, one of them with a tool call and its result) run at once through one provider:

- all up: every turn is answered once, and the servers' own logs show the requests spread
  over all three; the route the provider reports (metadata["route"]) names the same servers;
- one server stopped mid-run: still every turn is answered once; the test counts what each
  layer spent to absorb it (the router's retries from its x-litellm-attempted-retries
  header, ours from provider:retry events);
- all servers stopped: one error naming the proxy, well within a minute.

The figures (requests per server, the proxy's added latency, failover) go to the terminal
and to router-figures.json in the run's log folder; the README quotes one run. They are
reported, not asserted: only the bound on the all-down error is a timing check.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from amplifier_core.llm_errors import ProviderUnavailableError
from amplifier_core.message_models import (
    ChatRequest,
    ChatResponse,
    Message,
    ToolCallBlock,
    ToolResultBlock,
)
from stream_contract import assert_stream_contract

from amplifier_module_provider_chat_completions import ChatCompletionsProvider

from .conftest import _TerminalStream
from .helpers import WEATHER, mount_provider
from .litellm_proxy import LITELLM_MASTER_KEY, LITELLM_MODEL
from .litellm_router import (
    ROUTER_RETRIES,
    LiteLLMRouter,
    deployment_id,
    generations,
    restart_on_same_port,
    router_config,
    start_together,
    wait_until_generating,
)
from .llama_build import LlamaArtifacts
from .servers import LlamaServer

pytestmark = pytest.mark.e2e

SERVERS = 3
CONVERSATIONS = 20
TURNS = 3
STOP_AFTER = 20  # replies of the failover run before one server is stopped
RUN_TIMEOUT = 150.0  # a whole run of conversations; a hang fails instead of stalling CI
ALL_DOWN_BOUND = 60.0
LATENCY_SAMPLES = 15
# The provider's default retry policy (helpers.FAST would hide its waits from the figures).
PROVIDER = {"min_retry_delay": 1.0, "max_retry_delay": 30.0, "max_retries": 3, "timeout": 60}
FIGURES: dict[str, Any] = {}
README = Path(__file__).resolve().parents[2] / "README.md"
RECIPE_START, RECIPE_END = "<!-- router-config:start -->", "<!-- router-config:end -->"


@dataclass
class Cluster:
    servers: list[LlamaServer]
    proxy: LiteLLMRouter
    log_dir: Path

    def all_up(self) -> None:
        for server in self.servers:
            restart_on_same_port(server)

    def started(self) -> list[int]:
        return [generations(server)[0] for server in self.servers]

    def finished(self) -> list[int]:
        return [generations(server)[1] for server in self.servers]


@pytest.fixture(scope="module")
def cluster(
    llama_artifacts: LlamaArtifacts,
    litellm_venv: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Cluster]:
    log_dir = tmp_path_factory.mktemp("litellm-router")
    servers = [
        LlamaServer(
            llama_artifacts.server_command,
            llama_artifacts.model,
            threads=1,
            parallel=4,
            log_dir=log_dir / deployment_id(i),
        )
        for i in range(SERVERS)
    ]
    start_together(servers)
    try:
        api_bases = [server.base_url for server in servers]
        with LiteLLMRouter(litellm_venv, api_bases, log_dir=log_dir / "proxy") as proxy:
            yield Cluster(servers, proxy, log_dir)
    finally:
        for server in servers:
            server.stop()
        _report(pytestconfig, log_dir)


def _report(config: pytest.Config, log_dir: Path) -> None:
    if not FIGURES:
        return
    path = log_dir / "router-figures.json"
    path.write_text(json.dumps(FIGURES, indent=2) + "\n")
    terminal = _TerminalStream(config)
    terminal.write("\n")
    for key, value in FIGURES.items():
        terminal.write(f"[e2e router] {key}: {json.dumps(value)}\n")
    terminal.write(f"[e2e router] figures in {path}\n")


# -- Amplifier-style conversations ------------------------------------------------------


@dataclass
class Reply:
    conversation: int
    turn: int
    started: float
    ended: float
    response: ChatResponse

    @property
    def route(self) -> dict[str, Any]:
        return (self.response.metadata or {}).get("route") or {}


@dataclass
class Run:
    replies: list[Reply] = field(default_factory=list)
    on_reply: Callable[[Reply], None] = lambda reply: None

    def add(self, reply: Reply) -> None:
        self.replies.append(reply)
        self.on_reply(reply)


def _turn_request(history: list[Message], tools: bool, turn: int) -> ChatRequest:
    return ChatRequest(
        messages=list(history),
        tools=[WEATHER] if tools else None,
        tool_choice="required" if tools and turn == 0 else None,
        max_output_tokens=64,
    )


def _follow_up(response: ChatResponse, turn: int) -> list[Message]:
    """What the host appends after a reply: the calls and their results, or the next ask."""
    calls = response.tool_calls or []
    if not calls:
        return [
            Message(role="assistant", content=response.text),
            Message(role="user", content=f"Thanks. Now turn {turn + 2}, please."),
        ]
    blocks = [ToolCallBlock(id=c.id, name=c.name, input=c.arguments) for c in calls]
    results = [
        Message(role="tool", content=[ToolResultBlock(tool_call_id=c.id, output="Sunny, 21 C")])
        for c in calls
    ]
    return [Message(role="assistant", content=blocks), *results]


async def converse(provider: ChatCompletionsProvider, n: int, run: Run) -> None:
    """One conversation of TURNS streamed turns; conversation 0 starts with a tool call."""
    tools = n == 0
    ask = "What is the weather in Paris?" if tools else "Say hello."
    history = [Message(role="user", content=f"Conversation {n}. {ask}")]
    for turn in range(TURNS):
        started = time.monotonic()
        response = await provider.complete(_turn_request(history, tools, turn))
        run.add(Reply(n, turn, started, time.monotonic(), response))
        history += _follow_up(response, turn)


async def run_conversations(provider: ChatCompletionsProvider, run: Run) -> None:
    async with asyncio.timeout(RUN_TIMEOUT):
        await asyncio.gather(*(converse(provider, n, run) for n in range(CONVERSATIONS)))


def assert_each_turn_answered_once(run: Run, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Every turn has one reply of the expected kind; no reply, call or stream twice."""
    turns = Counter((r.conversation, r.turn) for r in run.replies)
    assert len(turns) == CONVERSATIONS * TURNS and set(turns.values()) == {1}, turns
    for reply in run.replies:
        calls = reply.response.tool_calls or []
        if reply.conversation == 0 and reply.turn == 0:
            assert [c.name for c in calls] == ["get_weather"], reply.response
            assert reply.response.finish_reason == "tool_calls"
        else:
            assert (reply.response.text, calls) == ("Hello world", []), reply.response
    call_ids = [c.id for r in run.replies for c in r.response.tool_calls or []]
    assert len(call_ids) == len(set(call_ids)) == 1
    response_ids = [(r.response.metadata or {}).get("response_id") for r in run.replies]
    assert len(set(response_ids)) == len(response_ids), "a reply was handed over twice"
    requests = [p["request_id"] for n, p in events if n == "llm:request"]
    answers = [p for n, p in events if n == "llm:response"]
    assert len(requests) == len(run.replies) == len(set(requests))
    assert sorted(p["request_id"] for p in answers) == sorted(requests)
    assert {p["status"] for p in answers} == {"ok"}
    for request_id in requests:
        assert_stream_contract([(n, p) for n, p in events if p.get("request_id") == request_id])


def _served_by(replies: list[Reply]) -> dict[str, int]:
    """Requests per deployment as the proxy reported them (metadata["route"])."""
    counts = Counter(r.route.get("deployment") for r in replies)
    return {deployment_id(i): counts.get(deployment_id(i), 0) for i in range(SERVERS)}


def assert_routes_reported(
    run: Run, events: list[tuple[str, dict[str, Any]]], bases: dict[str, str]
) -> None:
    """Each reply names the group it was sent as and the deployment that served it."""
    for reply in run.replies:
        route = reply.route
        assert route["model_group"] == LITELLM_MODEL
        assert route["api_base"] == bases[route["deployment"]]
        # The proxy names its retry budget only on replies it retried.
        assert 0 <= route["attempted_retries"] <= route.get("max_retries", ROUTER_RETRIES)
        assert route.get("max_retries", ROUTER_RETRIES) == ROUTER_RETRIES
        assert route["attempted_fallbacks"] == 0
        limits = reply.response.metadata["rate_limit"]
        assert limits["limit_requests"] >= limits["remaining_requests"] >= 0
    # llm:response carries the same routes to hooks.
    answered = [p["route"] for n, p in events if n == "llm:response"]
    assert sorted(r["call_id"] for r in answered) == sorted(r.route["call_id"] for r in run.replies)


def retries_spent(run: Run, events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What each layer spent: the router's retries (its header), ours (provider:retry)."""
    ours = [p for n, p in events if n == "provider:retry"]
    return {
        "router_retries": sum(r.route.get("attempted_retries", 0) for r in run.replies),
        "requests_the_router_retried": sum(
            1 for r in run.replies if r.route.get("attempted_retries")
        ),
        "provider_retries": len(ours),
        "provider_retry_errors": dict(Counter(p["error_type"] for p in ours)),
        "provider_retry_messages": sorted({p["error_message"][:240] for p in ours}),
    }


async def router_provider(coordinator: Any, cluster: Cluster) -> ChatCompletionsProvider:
    return await mount_provider(
        coordinator, cluster.proxy.base_url, LITELLM_MASTER_KEY, LITELLM_MODEL, True, **PROVIDER
    )


async def settled(cluster: Cluster, before: list[int], expect: int) -> list[int]:
    """Generations started per server since ``before``, once the logs show ``expect``."""
    deadline = time.monotonic() + 10
    while sum(cluster.started()) - sum(before) < expect and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would show up by now
    return [now - then for now, then in zip(cluster.started(), before, strict=True)]


def _span(run: Run) -> float:
    return round(max(r.ended for r in run.replies) - min(r.started for r in run.replies), 2)


def _ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 1)


async def measure_proxy_overhead(cluster: Cluster) -> dict[str, Any]:
    """Median time of one streamed turn straight to a llama-server and through the proxy,
    the two interleaved, each through a provider of its own."""
    config = {"default_model": LITELLM_MODEL, "max_retries": 0, "timeout": 60}
    direct = ChatCompletionsProvider(config={**config, "base_url": cluster.servers[0].base_url})
    proxied = ChatCompletionsProvider(
        config={**config, "base_url": cluster.proxy.base_url, "api_key": LITELLM_MASTER_KEY}
    )
    request = ChatRequest(
        messages=[Message(role="user", content="Say hello.")], max_output_tokens=16
    )
    times: dict[str, list[float]] = {"direct": [], "proxy": []}
    try:
        for provider in (direct, proxied):  # detection and the first connection
            await provider.complete(request)
        for _ in range(LATENCY_SAMPLES):
            for name, provider in (("direct", direct), ("proxy", proxied)):
                started = time.perf_counter()
                assert (await provider.complete(request)).text == "Hello world"
                times[name].append(time.perf_counter() - started)
    finally:
        await direct.close()
        await proxied.close()
    return {
        "direct_ms": _ms(times["direct"]),
        "via_proxy_ms": _ms(times["proxy"]),
        "added_ms": round(_ms(times["proxy"]) - _ms(times["direct"]), 1),
        "samples_each": LATENCY_SAMPLES,
    }


# -- the tests ------------------------------------------------------------------------


async def test_conversations_spread_over_the_servers(coordinator: Any, cluster: Cluster) -> None:
    cluster.all_up()
    FIGURES["proxy_overhead"] = await measure_proxy_overhead(cluster)
    provider = await router_provider(coordinator, cluster)
    before, mark = cluster.started(), len(coordinator.hooks.events)
    run = Run()
    await run_conversations(provider, run)
    events = coordinator.hooks.events[mark:]
    assert_each_turn_answered_once(run, events)
    per_server = await settled(cluster, before, len(run.replies))
    # One generation per turn, counted by the servers themselves: nothing ran twice.
    assert sum(per_server) == len(run.replies), per_server
    assert min(per_server) >= 3, f"requests not spread over the servers: {per_server}"
    # What the proxy says about each reply's route agrees with the servers' logs.
    assert list(_served_by(run.replies).values()) == per_server
    bases = {deployment_id(i): s.base_url for i, s in enumerate(cluster.servers)}
    assert_routes_reported(run, events, bases)
    FIGURES["all_up"] = {
        "requests": len(run.replies),
        "per_server": dict(zip(bases, per_server, strict=True)),
        **retries_spent(run, events),
        "proxy_reported_overhead_ms": statistics.median(
            r.route["proxy_overhead_ms"] for r in run.replies
        ),
        "seconds": _span(run),
    }


async def test_one_server_stopped_mid_run(coordinator: Any, cluster: Cluster) -> None:
    cluster.all_up()
    provider = await router_provider(coordinator, cluster)
    before, mark = cluster.started(), len(coordinator.hooks.events)
    finished_before = cluster.finished()
    enough = asyncio.Event()
    run = Run(on_reply=lambda _: enough.set() if len(run.replies) >= STOP_AFTER else None)
    stopped: list[float] = []
    busy: list[bool] = []

    async def stop_one_server() -> None:
        await enough.wait()
        # Mid-generation where possible, so that the stop cuts a reply off.
        busy.append(await wait_until_generating(cluster.servers[0], 1.0))
        stopped.append(time.monotonic())
        await asyncio.to_thread(cluster.servers[0].stop)
        stopped.append(time.monotonic())

    stopper = asyncio.create_task(stop_one_server())
    await run_conversations(provider, run)
    await stopper
    events = coordinator.hooks.events[mark:]
    # No conversation failed, and nothing was answered twice.
    assert_each_turn_answered_once(run, events)
    per_server = await settled(cluster, before, len(run.replies))
    finished = [n - b for n, b in zip(cluster.finished(), finished_before, strict=True)]
    bases = {deployment_id(i): s.base_url for i, s in enumerate(cluster.servers)}
    assert_routes_reported(run, events, bases)
    # The servers still up finished every generation they started, each one a reply the
    # route names; the stopped one cut some off (those turns were answered elsewhere).
    served = list(_served_by(run.replies).values())
    assert per_server[1:] == finished[1:] == served[1:], (per_server, finished, served)
    assert served[0] <= finished[0] <= per_server[0]
    cut_off = per_server[0] - finished[0]
    # Traffic after the stop, even when the run above finished before the server was
    # down (on a loaded machine stopping it can outlast the remaining turns).
    later = Run()
    async with asyncio.timeout(RUN_TIMEOUT):
        await asyncio.gather(*(converse(provider, n, later) for n in range(1, 4)))
    # Nothing after the stop was routed to the stopped server.
    after_stop = [r for r in (*run.replies, *later.replies) if r.started > stopped[1]]
    assert after_stop and _served_by(after_stop)[deployment_id(0)] == 0
    spent = retries_spent(run, events)
    # Each cut-off generation was answered again through a retry: ours when the proxy had
    # begun its reply, the router's when the server died before sending anything.
    assert spent["provider_retries"] + spent["router_retries"] >= cut_off
    FIGURES["one_stopped"] = {
        "requests": len(run.replies),
        "per_server": dict(zip(bases, per_server, strict=True)),
        "stopped": f"{deployment_id(0)} after {STOP_AFTER} replies",
        "stopped_while_generating": busy[0],
        "generations_cut_off": cut_off,
        **spent,
        **failover_times(run, events, stopped[0]),
    }


def failover_times(
    run: Run, events: list[tuple[str, dict[str, Any]]], stopped_at: float
) -> dict[str, Any]:
    """How the stop showed in latency: turns the router or we retried against the rest,
    among the turns that ended after the stop (medians, ms)."""
    ours = {p["request_id"] for n, p in events if n == "provider:retry"}
    by_call = {p["route"]["call_id"]: p["request_id"] for n, p in events if n == "llm:response"}
    during = [r for r in run.replies if r.ended > stopped_at]
    groups: dict[str, list[Reply]] = {"rerouted": [], "retried_by_us": [], "others": []}
    for reply in during:
        if by_call[reply.route["call_id"]] in ours:
            groups["retried_by_us"].append(reply)
        elif reply.route.get("attempted_retries"):
            groups["rerouted"].append(reply)
        else:
            groups["others"].append(reply)
    out: dict[str, Any] = {}
    for name, replies in groups.items():
        if replies:
            out[f"{name}_latency_ms"] = _ms([r.ended - r.started for r in replies])
    answered_again = groups["rerouted"] + groups["retried_by_us"]
    if answered_again:
        first = min(r.ended for r in answered_again)
        out["first_retried_reply_after_stop_ms"] = round((first - stopped_at) * 1000, 1)
    return out


async def test_all_servers_stopped_is_one_clear_error(coordinator: Any, cluster: Cluster) -> None:
    cluster.all_up()
    provider = await router_provider(coordinator, cluster)
    request = _turn_request([Message(role="user", content="Say hello.")], False, 0)
    assert (await provider.complete(request)).text == "Hello world"
    await asyncio.to_thread(lambda: [server.stop() for server in cluster.servers])
    mark = len(coordinator.hooks.events)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as info:
        async with asyncio.timeout(ALL_DOWN_BOUND * 2):  # a hang fails here
            await provider.complete(request)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert cluster.proxy.base_url in message, message
    assert "deployment" in message and LITELLM_MODEL in message, message
    assert elapsed < ALL_DOWN_BOUND, f"the error took {elapsed:.1f} s"
    events = coordinator.hooks.events[mark:]
    (answer,) = [p for n, p in events if n == "llm:response"]
    assert answer["status"] == "error" and answer["error"]["msg"] == message
    retries = [p for n, p in events if n == "provider:retry"]
    assert len(retries) <= PROVIDER["max_retries"]
    FIGURES["all_stopped"] = {
        "error": type(info.value).__name__,
        "seconds_to_error": round(elapsed, 2),
        "provider_retries": len(retries),
        "retry_after": [p["retry_after"] for p in retries],
        "message": message,
    }


def test_readme_recipe_is_the_config_under_test() -> None:
    """The README's router config is router_config() for the servers it names."""
    text = README.read_text()
    block = text.split(RECIPE_START, 1)[1].split(RECIPE_END, 1)[0]
    yaml_text = block.split("```yaml", 1)[1].split("```", 1)[0]
    shown = yaml.safe_load(yaml_text)
    api_bases = [d["litellm_params"]["api_base"] for d in shown["model_list"]]
    master_key = shown["general_settings"]["master_key"]
    assert len(api_bases) == SERVERS
    assert shown == router_config(api_bases, master_key=master_key)
