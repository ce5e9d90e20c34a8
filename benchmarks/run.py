"""The provider against the floor: one line per figure, provider / floor / ratio.

    uv run python -m benchmarks.run            # full sizes (about a minute)
    uv run python -m benchmarks.run --smoke    # tiny sizes, a few seconds (the smoke test)

The floor is the least any client can do with the same bytes: httpx + aiter_lines +
json.loads for a stream, an httpx POST of pre-serialized JSON for a request. Both run in
this process against the same local server (a subprocess, so its CPU is not counted),
interleaved run by run; figures are medians over repeated runs with a warm-up excluded.

Methods:
- stream: time.process_time() around one complete() (or floor read) of a pre-built stream;
  CPU seconds per 10,000 data events. Live events go to hooks whose emit() does nothing.
- request: time.perf_counter() around complete() (non-streaming, tiny reply) vs an httpx
  POST of the very bytes the provider sends.
- latency: the server stamps each chunk with time.time_ns() just before writing it to
  the socket; the hook reads the stamp out of the llm:stream_block_delta text and
  subtracts it from time.time_ns() (same machine, same clock). So this is send-to-event,
  an upper bound of arrival-to-event by the loopback delivery time (microseconds).
- concurrency: process CPU around asyncio.gather() of N complete() calls on one provider,
  per 10,000 chunks, vs the same stream completed alone.
- memory: a fresh subprocess per reader; after one warm-up request the peak RSS is reset
  to the current RSS (Linux /proc/self/clear_refs), which is the baseline; the peak RSS
  (VmHWM) after reading the big stream, minus the baseline, is the figure.
- scaling: build_request_body + repair_tool_sequence + dumps_body, perf_counter.
- import: fresh interpreters, one after the other, alternating (benchmarks/importcost.py),
  with bytecode cached by the warm-up: perf_counter around importing the kernel modules
  every host loads (the floor) vs the same plus this package and mount(); the target is
  the difference. In the provider's
  process two complete() calls follow; the first one's extra time over the second is
  reported, beside what importing openai + httpx alone costs (timed in the floor's).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from amplifier_core.message_models import (
    ChatRequest,
    Message,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
    ToolSpec,
)

from amplifier_module_provider_chat_completions.config import parse_config
from amplifier_module_provider_chat_completions.events import STREAM_BLOCK_DELTA
from amplifier_module_provider_chat_completions.provider import ChatCompletionsProvider
from amplifier_module_provider_chat_completions.request.convert import (
    build_request_body,
    dumps_body,
)
from amplifier_module_provider_chat_completions.request.tool_sequence import repair_tool_sequence
from benchmarks import payloads

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    stream_chunks: int
    repeats: int
    warmup: int
    request_messages: int
    request_result_bytes: int
    latency_chunks: int
    latency_gap_ms: int
    concurrent_streams: int
    concurrent_chunks: int
    memory_bytes: int
    scaling: tuple[int, int]
    import_runs: int


FULL = Sizes(
    stream_chunks=20_000,
    repeats=7,
    warmup=1,
    request_messages=600,
    request_result_bytes=6_600,
    latency_chunks=150,
    latency_gap_ms=20,
    concurrent_streams=100,
    concurrent_chunks=1_000,
    memory_bytes=20_000_000,
    scaling=(1_000, 10_000),
    import_runs=15,
)
SMOKE = Sizes(
    stream_chunks=200,
    repeats=1,
    warmup=1,
    request_messages=20,
    request_result_bytes=500,
    latency_chunks=5,
    latency_gap_ms=20,
    concurrent_streams=10,
    concurrent_chunks=20,
    memory_bytes=200_000,
    scaling=(100, 1_000),
    import_runs=1,
)


# -- plumbing ----------------------------------------------------------------------------


class NullHooks:
    async def emit(self, name: str, payload: dict[str, Any]) -> None:
        return None


class Coordinator:
    def __init__(self, hooks: Any) -> None:
        self.hooks = hooks


@contextmanager
def local_server() -> Iterator[int]:
    """The benchmark server in a subprocess; yields its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_provider(port: int, scenario: str, hooks: Any = None, **config: Any) -> Any:
    cfg = {
        "base_url": f"http://127.0.0.1:{port}/{scenario}/v1",
        "default_model": payloads.MODEL,
        "server": "openai",  # no /models probe: the generic profile
        "max_retries": 0,
        "timeout": 60,
        **config,
    }
    return ChatCompletionsProvider(config=cfg, coordinator=Coordinator(hooks or NullHooks()))


TOOL = ToolSpec(
    name="write_file",
    description="Write a file",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    },
)


def short_request() -> ChatRequest:
    # A tool is offered, as in every agent turn (it also arms text tool-call salvage).
    return ChatRequest(messages=[Message(role="user", content="Say something.")], tools=[TOOL])


def history(n_messages: int, result_bytes: int) -> ChatRequest:
    """An agent session: system, user, then assistant tool call / tool result pairs."""
    filler = 'line {i}: print("héllo", x[{i}])  # \\ "quoted" \t tab\n'
    result = "".join(filler.format(i=i) for i in range(result_bytes // 48 + 1))[:result_bytes]
    messages = [
        Message(role="system", content="You are a coding agent. " * 40),
        Message(role="user", content="Refactor the project and keep the tests green."),
    ]
    i = 0
    while len(messages) < n_messages:
        call_id = f"call_{i:06d}"
        messages.append(
            Message(
                role="assistant",
                content=[
                    TextBlock(text=f"Step {i}: reading the next file."),
                    ToolCallBlock(
                        id=call_id,
                        name="write_file",
                        input={"path": f"src/m{i}.py", "content": "x"},
                    ),
                ],
            )
        )
        messages.append(
            Message(
                role="tool",
                tool_call_id=call_id,
                content=[ToolResultBlock(tool_call_id=call_id, output=result)],
            )
        )
        i += 1
    return ChatRequest(messages=messages[:n_messages], tools=[TOOL])


def wire_body(request: ChatRequest, stream: bool) -> bytes:
    cfg = parse_config({"base_url": "http://127.0.0.1:1/v1", "default_model": payloads.MODEL})
    body = build_request_body(request, cfg, stream=stream)
    body["messages"], _, _ = repair_tool_sequence(body["messages"])
    return dumps_body(body)


async def floor_stream(
    client: httpx.AsyncClient, url: str, body: bytes, on_chunk: Callable[[Any], None] | None
) -> int:
    """The floor: read the SSE lines to the end and parse each data payload, nothing more."""
    n = 0
    loads = json.loads
    headers = {"content-type": "application/json"}
    async with client.stream("POST", url, content=body, headers=headers) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line[6:]
                if data == "[DONE]":
                    continue  # read on to the end of the body: the connection is kept
                chunk = loads(data)
                n += 1
                if on_chunk is not None:
                    on_chunk(chunk)
    return n


def median(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def interleaved(
    sizes: Sizes,
    provider_run: Callable[[], Awaitable[float]],
    floor_run: Callable[[], Awaitable[float]],
) -> tuple[float, float]:
    """Alternate provider and floor runs (noise hits both); medians without warm-ups."""
    ours: list[float] = []
    floor: list[float] = []
    for i in range(sizes.warmup + sizes.repeats):
        gc.collect()
        mine = await provider_run()
        gc.collect()
        base = await floor_run()
        if i >= sizes.warmup:
            ours.append(mine)
            floor.append(base)
    return median(ours), median(floor)


def line(figure: str, ours: str, floor: str, ratio: float, target: str, ok: bool) -> None:
    verdict = "ok" if ok else "MISSED"
    print(
        f"{figure:<20} provider {ours:<26} floor {floor:<26} ratio {ratio:6.2f}x  "
        f"target {target} {verdict}",
        flush=True,
    )


# -- figures -----------------------------------------------------------------------------


async def bench_stream(port: int, sizes: Sizes, kind: str) -> None:
    scenario = f"{kind}-{sizes.stream_chunks}"
    chunks = payloads.chunk_count(scenario)
    provider = make_provider(port, scenario)
    request = short_request()
    body = wire_body(request, stream=True)
    url = f"http://127.0.0.1:{port}/{scenario}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=60) as client:

        async def ours() -> float:
            start = time.process_time()
            await provider.complete(request)
            return time.process_time() - start

        async def floor() -> float:
            start = time.process_time()
            got = await floor_stream(client, url, body, None)
            elapsed = time.process_time() - start
            assert got == chunks, (got, chunks)
            return elapsed

        mine, base = await interleaved(sizes, ours, floor)
    await provider.close()
    per = 10_000 / chunks
    ratio = mine / base
    line(
        f"stream/{kind}",
        f"{mine * per:.4f} s/10k chunks",
        f"{base * per:.4f} s/10k chunks",
        ratio,
        "<= 1.5x",
        ratio <= 1.5,
    )


async def bench_request(port: int, sizes: Sizes) -> None:
    request = history(sizes.request_messages, sizes.request_result_bytes)
    body = wire_body(request, stream=False)
    provider = make_provider(port, "reply", use_streaming=False)
    url = f"http://127.0.0.1:{port}/reply/v1/chat/completions"
    async with httpx.AsyncClient(timeout=60) as client:

        async def ours() -> float:
            start = time.perf_counter()
            await provider.complete(request)
            return time.perf_counter() - start

        async def floor() -> float:
            start = time.perf_counter()
            response = await client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
            json.loads(response.content)
            return time.perf_counter() - start

        # A run is ~10 ms: many more of them cost nothing and steady the median.
        runs = dataclasses.replace(sizes, repeats=sizes.repeats * 5)
        mine, base = await interleaved(runs, ours, floor)
    await provider.close()
    ratio = mine / base
    size = f"{len(request.messages)} msgs, {len(body) / 1e6:.1f} MB"
    line(
        f"request ({size})",
        f"{mine * 1e3:.1f} ms",
        f"{base * 1e3:.1f} ms",
        ratio,
        "<= 1.5x",
        ratio <= 1.5,
    )
    request_breakdown(request, runs.repeats)


def request_breakdown(request: ChatRequest, repeats: int) -> None:
    """Where the provider's extra time goes: the CPU steps the floor skips by design."""
    cfg = parse_config({"base_url": "http://127.0.0.1:1/v1", "default_model": payloads.MODEL})
    body = build_request_body(request, cfg, stream=False)
    steps = {
        "convert": lambda: build_request_body(request, cfg, stream=False),
        "repair": lambda: repair_tool_sequence(body["messages"]),
        "encode": lambda: dumps_body(body),
    }
    parts = []
    for name, step in steps.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        parts.append(f"{name} {median(times) * 1e3:.2f} ms")
    print(f"{'  request parts':<20} " + ", ".join(parts) + " (not in the floor)", flush=True)


async def bench_latency(port: int, sizes: Sizes) -> None:
    scenario = f"paced-{sizes.latency_chunks}-{sizes.latency_gap_ms}"
    ours: list[float] = []
    floor: list[float] = []

    class StampHooks:
        async def emit(self, name: str, payload: dict[str, Any]) -> None:
            if name == STREAM_BLOCK_DELTA:
                ours.append((time.time_ns() - int(payload["text"])) / 1e6)

    def on_chunk(chunk: Any) -> None:
        choices = chunk.get("choices")
        if choices and choices[0]["delta"].get("content"):
            floor.append((time.time_ns() - int(choices[0]["delta"]["content"])) / 1e6)

    provider = make_provider(port, scenario, StampHooks())
    request = short_request()
    body = wire_body(request, stream=True)
    url = f"http://127.0.0.1:{port}/{scenario}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=60) as client:
        await provider.complete(request)  # warm-up
        ours.clear()
        await provider.complete(request)
        await floor_stream(client, url, body, on_chunk)
    await provider.close()
    assert len(ours) == len(floor) == sizes.latency_chunks, (len(ours), len(floor))
    for name, pick, target in (("median", median, 1.0), ("p99", p99, 5.0)):
        mine, base = pick(ours), pick(floor)
        line(
            f"latency/{name}",
            f"{mine:.3f} ms",
            f"{base:.3f} ms",
            mine / base,
            f"<= {target:g} ms",
            mine <= target,
        )


async def bench_concurrency(port: int, sizes: Sizes) -> None:
    scenario = f"text-{sizes.concurrent_chunks}"
    chunks = payloads.chunk_count(scenario)
    n = sizes.concurrent_streams
    provider = make_provider(port, scenario)
    request = short_request()

    async def alone() -> float:
        start = time.process_time()
        await provider.complete(request)
        return time.process_time() - start

    errors = 0
    together: list[float] = []
    single: list[float] = []
    for i in range(sizes.warmup + sizes.repeats):
        gc.collect()
        start = time.process_time()
        results = await asyncio.gather(
            *(provider.complete(request) for _ in range(n)), return_exceptions=True
        )
        elapsed = time.process_time() - start
        bad = [r for r in results if isinstance(r, BaseException)]
        errors += len(bad)
        if bad:
            print(f"  concurrency error: {bad[0]!r}", file=sys.stderr)
        gc.collect()
        one = await alone()
        if i >= sizes.warmup:
            together.append(elapsed / n)
            single.append(one)
    await provider.close()
    per = 10_000 / chunks
    mine, base = median(together) * per, median(single) * per
    ratio = mine / base
    line(
        f"concurrency/{n}",
        f"{mine:.4f} s/10k chunks",
        f"{base:.4f} s/10k (alone)",
        ratio,
        f"<= 1.5x, errors {errors}",
        ratio <= 1.5 and errors == 0,
    )


def bench_memory(port: int, sizes: Sizes) -> None:
    scenario = f"big-{sizes.memory_bytes}"
    wire = sum(len(e) for e in payloads.stream_events(scenario))
    # Both children at once: each measures only itself, and imports dominate their time.
    child = ["-m", "benchmarks.run", "--port", str(port), "--scenario", scenario]
    children = {
        reader: subprocess.Popen(
            [sys.executable, *child, "--child", reader],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for reader in ("provider", "floor")
    }
    grown: dict[str, int] = {}
    for reader, proc in children.items():
        out, _ = proc.communicate(timeout=600)
        if proc.returncode:
            raise RuntimeError(f"memory child {reader} failed ({proc.returncode})")
        grown[reader] = json.loads(out)["grown"]
    mine, base = grown["provider"], grown["floor"]
    line(
        f"memory ({wire / 1e6:.1f} MB)",
        f"{mine / 1e6:.1f} MB over baseline",
        f"{base / 1e6:.1f} MB over baseline",
        mine / wire,  # the floor keeps nothing: the ratio that matters is to the size
        "<= 3x the response size",
        mine <= 3 * wire,
    )


def reset_peak_rss() -> int:
    """Reset the peak RSS to the current RSS (Linux clear_refs) and return it, in bytes.

    Without the reset, ru_maxrss still holds the import-time peak, which can hide a stream's
    growth entirely. Where clear_refs is unavailable this falls back to that peak.
    """
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return peak_rss()


def peak_rss() -> int:
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def memory_child(port: int, scenario: str, reader: str) -> None:
    """In a fresh process: how much a 20 MB stream raises the peak RSS."""

    async def go() -> int:
        request = short_request()
        if reader == "provider":
            provider = make_provider(port, scenario)
            warm = make_provider(port, "text-100")
            await warm.complete(request)  # imports, pools, lazy state: into the baseline
            await warm.close()
            gc.collect()
            before = reset_peak_rss()
            response = await provider.complete(request)
            after = peak_rss()
            assert response.content
            await provider.close()
        else:
            body = wire_body(request, stream=True)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=60) as client:
                await floor_stream(client, f"{base}/text-100/v1/chat/completions", body, None)
                gc.collect()
                before = reset_peak_rss()
                await floor_stream(client, f"{base}/{scenario}/v1/chat/completions", body, None)
                after = peak_rss()
        return after - before

    print(json.dumps({"grown": asyncio.run(go())}))


def bench_scaling(sizes: Sizes) -> None:
    cfg = parse_config({"base_url": "http://127.0.0.1:1/v1", "default_model": payloads.MODEL})
    times: dict[int, float] = {}
    for n in sizes.scaling:
        request = history(n, 500)
        runs: list[float] = []
        for _ in range(sizes.warmup + max(3, sizes.repeats // 2)):
            gc.collect()
            start = time.perf_counter()
            body = build_request_body(request, cfg, stream=True)
            body["messages"], _, _ = repair_tool_sequence(body["messages"])
            dumps_body(body)
            runs.append(time.perf_counter() - start)
        times[n] = median(runs[sizes.warmup :])
    small, large = sizes.scaling
    factor = large / small
    ratio = times[large] / times[small]
    line(
        f"scaling ({small}->{large})",
        f"{times[large] * 1e3:.1f} ms for {large}",
        f"{times[small] * 1e3:.1f} ms for {small}",
        ratio,
        f"<= {1.2 * factor:g}x",
        ratio <= 1.2 * factor,
    )


def bench_import(port: int, sizes: Sizes) -> None:
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "provider": []}
    with tempfile.TemporaryDirectory() as pycache:
        # Compiled once, in the warm-up, then read from the cache, as an installed host
        # does after its first start (PYTHONDONTWRITEBYTECODE would compile every time).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        for i in range(sizes.warmup + sizes.import_runs):
            for kind in runs:
                child = [sys.executable, "-m", "benchmarks.importcost", kind, str(port)]
                done = subprocess.run(
                    child, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
                )
                if done.returncode:
                    raise RuntimeError(f"import child {kind} failed: {done.stderr}")
                if i >= sizes.warmup:
                    runs[kind].append(json.loads(done.stdout))
    mine = median([r["startup"] for r in runs["provider"]])
    base = median([r["startup"] for r in runs["floor"]])
    extra = mine - base
    line(
        "import+mount",
        f"{mine * 1e3:.1f} ms (+{extra * 1e3:.1f} ms)",
        f"{base * 1e3:.1f} ms",
        mine / base,
        "<= +150 ms",
        extra <= 0.150,
    )
    first = median([r["requests"][0] for r in runs["provider"]])
    second = median([r["requests"][1] for r in runs["provider"]])
    stack = median([r["http_stack"] for r in runs["floor"]])
    loaded = sorted({m for r in runs["provider"] for m in r["loaded_at_mount"]})
    print(
        f"{'  first request':<20} +{(first - second) * 1e3:.1f} ms over the second "
        f"({first * 1e3:.1f} vs {second * 1e3:.1f} ms); importing openai + httpx alone "
        f"{stack * 1e3:.1f} ms; loaded at mount: {', '.join(loaded) or 'neither'}",
        flush=True,
    )


FIGURES = ("stream", "request", "latency", "concurrency", "memory", "scaling", "import")


async def run_async(port: int, sizes: Sizes, only: set[str]) -> None:
    if "stream" in only:
        await bench_stream(port, sizes, "text")
        await bench_stream(port, sizes, "tools")
    if "request" in only:
        await bench_request(port, sizes)
    if "latency" in only:
        await bench_latency(port, sizes)
    if "concurrency" in only:
        await bench_concurrency(port, sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument(
        "--only", default=",".join(FIGURES), help=f"comma-separated subset of {FIGURES}"
    )
    parser.add_argument("--child", choices=("provider", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        memory_child(args.port, args.scenario, args.child)
        return 0
    sizes = SMOKE if args.smoke else FULL
    print(
        f"python {sys.version.split()[0]}, httpx {httpx.__version__}, "
        f"{os.cpu_count()} CPUs; medians of {sizes.repeats} runs after {sizes.warmup} warm-up "
        f"({sizes.import_runs} for import)",
        flush=True,
    )
    only = set(args.only.split(","))
    with local_server() as port:
        asyncio.run(run_async(port, sizes, only))
        if "memory" in only:
            bench_memory(port, sizes)
        if "import" in only:
            bench_import(port, sizes)
    if "scaling" in only:
        bench_scaling(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
