"""Amplifier provider for any server that speaks the OpenAI Chat Completions wire format."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .config import ProviderConfig, parse_config, resolve_base_url
from .provider import ChatCompletionsProvider

__all__ = ["ChatCompletionsProvider", "ProviderConfig", "mount", "parse_config"]
__amplifier_module_type__ = "provider"

logger = logging.getLogger(__name__)


async def mount(
    coordinator: Any, config: Mapping[str, Any] | None = None
) -> Callable[[], Awaitable[None]] | None:
    """Mount the provider; returns its cleanup, or None when no base_url is configured."""
    config = dict(config or {})
    if not resolve_base_url(config, os.environ):
        logger.info(
            "provider-chat-completions not mounted: no base_url in config and "
            "CHAT_COMPLETIONS_BASE_URL is not set"
        )
        return None
    provider = ChatCompletionsProvider(config=config, coordinator=coordinator)
    await coordinator.mount("providers", provider, name=provider.name)
    provider.start()
    logger.info("[%s] mounted for %s", provider.name, provider.config.base_url)
    return provider.close
