"""What a response cost, in USD, as the kernel defines it (pure).

`Usage.cost_usd` is a Decimal, and None means "unknown", never 0. The server's own figure
wins: OpenRouter puts it in `usage.cost`, the LiteLLM proxy in the `x-litellm-response-cost`
header. Otherwise a `pricing` config (USD per million tokens) prices the token counts; with
neither, the cost stays unknown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from amplifier_core.message_models import Usage

from ..config import Pricing

__all__ = ["LITELLM_COST_HEADER", "SessionCost", "response_cost"]

LITELLM_COST_HEADER = "x-litellm-response-cost"


def _decimal(value: object) -> Decimal | None:
    """A finite, non-negative amount from a JSON number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def reported_cost(usage: object, headers: Mapping[str, str]) -> Decimal | None:
    """The cost the server states for this response, if it states one."""
    if isinstance(usage, dict):
        stated = _decimal(usage.get("cost"))  # OpenRouter
        if stated is not None:
            return stated
    return _decimal(headers.get(LITELLM_COST_HEADER))


def response_cost(
    usage: Usage | None, wire_usage: Any, headers: Mapping[str, str], pricing: Pricing | None
) -> Decimal | None:
    """The server's figure, else the configured pricing applied to `usage`, else None."""
    stated = reported_cost(wire_usage, headers)
    if stated is not None:
        return stated
    if pricing is not None and usage is not None:
        return pricing.cost(usage)
    return None


class SessionCost:
    """The running total one provider instance reports on the `session.cost` channel."""

    __slots__ = ("_total", "priced", "unpriced")

    def __init__(self) -> None:
        self._total = Decimal(0)
        self.priced = 0
        self.unpriced = 0

    def add(self, cost: Decimal | None) -> None:
        if cost is None:
            self.unpriced += 1
        else:
            self._total += cost
            self.priced += 1

    def contribution(self) -> dict[str, Any] | None:
        """{"cost_usd": "<total>"} once a call was priced; None while nothing is known.

        A string, as the host's own contributors give it (consumers take str or Decimal).
        """
        if not self.priced:
            return None
        out: dict[str, Any] = {"cost_usd": str(self._total)}
        if self.unpriced:
            out["unpriced_calls"] = self.unpriced
        return out
