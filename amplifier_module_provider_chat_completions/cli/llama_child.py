"""The local mode's server process: llama.cpp's own HTTP server from the xllamacpp wheel.

    python -P llama_child.py MODEL.gguf --alias NAME [--port P] [--ctx-size N] [--threads N]

local_server.py starts it as a script; the provider never imports it, and it imports
nothing from the package. It loads the model, starts the server on 127.0.0.1 (port 0: any
free port), writes one line to stdout, `READY <address>` or `ERROR <reason>`, and then
serves from llama.cpp's threads until its standard input closes: the parent stopped it, or
the parent is gone however it died. It then exits at once (the OS frees the model; no slow
teardown). llama.cpp's log goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="llama.cpp's HTTP server (xllamacpp)")
    parser.add_argument("model", help="the GGUF model file")
    parser.add_argument("--alias", required=True, help="the model id the server reports")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--ctx-size", type=int, default=8192, help="context window in tokens")
    parser.add_argument("--threads", type=int, default=-1, help="-1: llama.cpp's choice")
    return parser.parse_args(argv)


def make_params(xllamacpp: Any, args: argparse.Namespace) -> Any:
    """`CommonParams` as `llama-server -m MODEL --jinja --host 127.0.0.1` sets them."""
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.use_jinja = True  # the model's own chat template: tool calls and reasoning work
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx_size
    params.n_parallel = 1
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    return params


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import xllamacpp
    except ImportError as err:
        _say(f"ERROR xllamacpp cannot be imported: {err}")
        return 3
    try:
        server = xllamacpp.Server(make_params(xllamacpp, args))
    except (RuntimeError, AttributeError, TypeError) as err:
        # llama.cpp logged the reason to stderr just before (bad model, port taken).
        _say(f"ERROR {err}")
        return 1
    _say(f"READY {server.listening_address}")
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.buffer.read()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
