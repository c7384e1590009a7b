"""llama.cpp's OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks of the ``openai`` backend.

The server is llama.cpp's own ``llama-server`` code (``/v1/completions``, ``/v1/chat/completions``, ``/health``)
from the ``xllamacpp`` wheel the ``llamacpp`` backend already runs in-process, so it needs no extra package and no
compiler. It is started with the engine settings of :class:`medsyn.generation.backends.llamacpp_backend.
LlamaCppBackend` (same slot context, threads, sampling defaults, no prompt cache in host memory), which is what lets a
test compare the two paths note for note:

    python -m medsyn.testing.llama_server --model gemma3 --port 8080

It serves until SIGTERM or SIGINT. :func:`medsyn.testing.servers.llama_server` starts it as a child process.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medsyn.testing.llama_server", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="gemma3", help="a .gguf file or a packaged model name (gemma3)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--max-input-tokens", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=1024)
    args = p.parse_args(argv)

    import xllamacpp

    from medsyn.generation.backends.llamacpp_backend import engine_params
    from medsyn.training.models import gguf_path

    path = gguf_path(args.model)
    if path is None:
        print(f"error: {args.model}: not a GGUF model", file=sys.stderr)
        return 2
    # The in-process backend's own settings, so both paths run the same engine.
    params = engine_params(xllamacpp, path, max_input_tokens=args.max_input_tokens, max_tokens=args.max_tokens,
                           parallel=args.parallel, threads=args.threads)  # fmt: skip
    params.hostnames = [args.host]
    params.port = args.port
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    server = xllamacpp.Server(params)  # listens once the model is loaded; serves from its own threads
    print(f"llama.cpp server on {server.listening_address}", flush=True)
    stopped.wait()
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
