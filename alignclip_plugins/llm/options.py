"""The command-line options every LLM-backed command shares, and the client they build."""

from __future__ import annotations

import argparse

from alignclip_plugins.llm.client import ChatClient


def add_llm_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """Add ``--llm-url``, ``--llm-model``, ``--llm-api-key-env`` and the tuning options."""
    group = parser.add_argument_group("LLM endpoint (OpenAI-compatible chat completions)")
    group.add_argument(
        "--llm-url",
        required=required,
        help="base URL, e.g. http://localhost:8000/v1 (vLLM), http://localhost:8080/v1 "
        "(llama.cpp server) or https://api.openai.com/v1; /chat/completions is appended",
    )
    group.add_argument("--llm-model", required=required, help="model name sent with each request")
    group.add_argument(
        "--llm-api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (unset: no Authorization header)",
    )
    group.add_argument("--llm-workers", type=int, default=8, help="concurrent requests")
    group.add_argument("--llm-timeout", type=float, default=120.0, help="seconds per request")
    group.add_argument(
        "--llm-retries",
        type=int,
        default=5,
        help="retries per request, once the endpoint has answered (before that, the first "
        "connection error stops the run)",
    )
    group.add_argument(
        "--llm-backoff", type=float, default=1.0, help="first retry delay in seconds (doubles)"
    )
    group.add_argument("--llm-max-tokens", type=int, default=None, help="answer length limit")


def client_from_args(args: argparse.Namespace, temperature: float = 0.0) -> ChatClient:
    """A :class:`ChatClient` configured from :func:`add_llm_arguments`' options."""
    if not args.llm_url or not args.llm_model:
        raise ValueError("--llm-url and --llm-model are required for LLM requests")
    return ChatClient.from_env(
        args.llm_url,
        args.llm_model,
        api_key_env=args.llm_api_key_env,
        timeout=args.llm_timeout,
        max_retries=args.llm_retries,
        backoff=args.llm_backoff,
        temperature=temperature,
        max_tokens=args.llm_max_tokens,
    )
