"""TLS: verification on by default, `verify` (bool or CA bundle) for self-signed internal
servers, and one warning when the api_key would cross the network over plain http."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from amplifier_core.llm_errors import LLMError, NetworkError
from amplifier_core.message_models import ChatRequest, ChatResponse, Message
from fault_helpers import LeakCheck, make_provider
from faulty_server import Conn, FaultyServer, Request, stream_text

from amplifier_module_provider_chat_completions import ChatCompletionsProvider

KEY = "TlsCanaryKey-5e8d2c"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed cert for 127.0.0.1 (openssl CLI; the venv has no cryptography)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def _tls_server(serve: Any, cert: Path, key: Path) -> FaultyServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(conn: Conn, req: Request) -> None:
        await stream_text(conn, ["secure"])

    return serve(handler, ssl_context=context)


async def _ask(provider: ChatCompletionsProvider) -> ChatResponse | LLMError:
    async with asyncio.timeout(10):
        try:
            return await provider.complete(
                ChatRequest(messages=[Message(role="user", content="hi")])
            )
        except LLMError as err:
            return err


async def test_verification_is_on_by_default(serve: Any, self_signed: tuple[Path, Path]) -> None:
    server = _tls_server(serve, *self_signed)
    leaks = LeakCheck()
    provider = make_provider(server.url, api_key=KEY)
    assert provider.config.verify is True
    result = await _ask(provider)
    assert isinstance(result, NetworkError), result
    assert "CERTIFICATE_VERIFY_FAILED" in str(result)
    assert "verify" in str(result)  # the hint names the config key
    assert server.requests == []  # nothing (no key) was sent to the unverified server
    await leaks.finish(provider, server)


@pytest.mark.parametrize("verify", ["bundle", False, "false"])
async def test_verify_key_serves_self_signed_servers(
    serve: Any, self_signed: tuple[Path, Path], verify: Any
) -> None:
    cert, key = self_signed
    server = _tls_server(serve, cert, key)
    leaks = LeakCheck()
    provider = make_provider(
        server.url, api_key=KEY, verify=str(cert) if verify == "bundle" else verify
    )
    result = await _ask(provider)
    assert isinstance(result, ChatResponse), result
    assert result.text == "secure"
    assert len(server.requests) == 1
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    await leaks.finish(provider, server)


def test_missing_ca_bundle_is_a_configuration_error() -> None:
    from amplifier_core.llm_errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="verify"):
        ChatCompletionsProvider(config={"base_url": "https://h/v1", "verify": "/no/such/ca.pem"})


@pytest.mark.parametrize(
    ("base_url", "api_key", "warnings"),
    [
        ("http://10.1.2.3:8080/v1", KEY, 1),
        ("http://gpu-box.internal/v1", KEY, 1),
        ("http://[2001:db8::1]:8000/v1", KEY, 1),
        ("https://gpu-box.internal/v1", KEY, 0),
        ("http://127.0.0.1:8080/v1", KEY, 0),
        ("http://127.8.9.10/v1", KEY, 0),
        ("http://localhost:8080/v1", KEY, 0),
        ("http://LOCALHOST/v1", KEY, 0),
        ("http://[::1]:8080/v1", KEY, 0),
        ("http://10.1.2.3:8080/v1", None, 0),  # no key, nothing to leak
        ("http://10.1.2.3:8080/v1", "not-needed", 0),
    ],
)
def test_plain_http_with_a_key_to_a_remote_host_warns_once(
    caplog: pytest.LogCaptureFixture, base_url: str, api_key: str | None, warnings: int
) -> None:
    caplog.set_level(logging.DEBUG)
    config = {"base_url": base_url, **({"api_key": api_key} if api_key else {})}
    ChatCompletionsProvider(config=config)
    found = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(found) == warnings, [r.getMessage() for r in found]
    for record in found:
        assert record.levelno == logging.WARNING
        assert KEY not in record.getMessage()
