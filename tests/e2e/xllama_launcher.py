"""Run llama.cpp's own HTTP server from the ``xllamacpp`` wheel, like the llama-server binary.

    VENV/bin/python xllama_launcher.py -m MODEL.gguf --jinja --host 127.0.0.1 --port P \
        -c 4096 -t 2 -np 2 [--api-key K] [--metrics] [--chat-template-file F]

Runs inside the xllamacpp venv (see pypi_llama.py), never in the project's environment, and
imports nothing from the project. It takes the subset of llama-server's flags that the e2e
tests use, fills ``xllamacpp.CommonParams`` with them and starts ``xllamacpp.Server``, which
binds the port, loads the model and serves the same HTTP API as llama-server (/health,
/v1/models, /v1/chat/completions, /props, /slots, /metrics) from C++ threads.

It then waits for SIGTERM/SIGINT/SIGHUP, or for its parent to go away (a killed pytest), and
exits at once with ``os._exit`` (the OS frees the model; no slow teardown). A port that is
taken makes llama.cpp log "couldn't bind HTTP server socket" and this exits with code 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--jinja", dest="jinja", action="store_true", default=True)
    p.add_argument("--no-jinja", dest="jinja", action="store_false")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-c", "--ctx-size", type=int, default=4096)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-np", "--parallel", type=int, default=1)
    p.add_argument("--api-key", action="append", default=[])
    p.add_argument("--metrics", action="store_true")
    p.add_argument("--chat-template-file")
    return p.parse_args(argv)


def make_params(xllamacpp: object, args: argparse.Namespace) -> object:
    """``CommonParams`` as llama-server would set them from the same flags."""
    params = xllamacpp.CommonParams()  # type: ignore[attr-defined]
    params.model.path = args.model
    params.use_jinja = args.jinja
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx_size  # split across the slots, as in llama-server (not unified)
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.api_keys = list(args.api_key)
    params.endpoint_metrics = args.metrics
    params.endpoint_slots = True
    if args.chat_template_file:
        with open(args.chat_template_file, encoding="utf-8") as fh:
            params.chat_template = fh.read()
    return params


def wait_for_stop() -> None:
    """Block until a stop signal arrives or the parent process is gone."""
    parent = os.getppid()
    while True:
        if signal.sigtimedwait(STOP_SIGNALS, 1.0) is not None:
            return
        if os.getppid() != parent:
            return


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Blocked before the server starts its threads, so they inherit the mask and the
    # signals wait for sigtimedwait in this thread instead of killing a C++ thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    import xllamacpp

    print(f"xllamacpp {xllamacpp.__version__} {xllamacpp.BUILD_INFO}", file=sys.stderr, flush=True)
    try:
        server = xllamacpp.Server(make_params(xllamacpp, args))
    except RuntimeError as exc:  # llama.cpp logged the reason (bind, model) just before
        print(f"xllamacpp server failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"serving on {server.listening_address}", file=sys.stderr, flush=True)
    wait_for_stop()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
