"""Model prices for spans that carry tokens but no cost (every dialect but LiteLLM, and LiteLLM's
unpriced models, which report 0.0). A project's own price for a model (self-hosted ones like
qwen-235b) wins over the public table from `genai-prices`. Prices are applied when a number is
asked for, never stored, so a price change reaches every past span.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from genai_prices import Usage, calc_price

# Per-token prices from a 1k-token sample: low enough to stay in the first tier of tiered models.
_SAMPLE = 1000


@functools.lru_cache(maxsize=1024)
def public_price(model: str) -> tuple[float, float] | None:
    """(USD per input token, USD per output token) from genai-prices, or None when unknown."""
    if not model:
        return None
    candidates = [(model, None)]
    if "/" in model:  # LiteLLM's provider/model spelling
        provider, _, name = model.partition("/")
        candidates += [(name, provider), (name, None)]
    for ref, provider in candidates:
        try:
            inp = calc_price(Usage(input_tokens=_SAMPLE, output_tokens=0), ref, provider_id=provider)
            out = calc_price(Usage(input_tokens=0, output_tokens=_SAMPLE), ref, provider_id=provider)
        except LookupError:
            continue
        return float(Decimal(inp.total_price) / _SAMPLE), float(Decimal(out.total_price) / _SAMPLE)
    return None


def project_prices(project_id) -> dict[str, tuple[float, float]]:
    from monitoring.models import ModelPrice

    return {
        p.model: (float(p.input_per_million) / 1e6, float(p.output_per_million) / 1e6)
        for p in ModelPrice.objects.filter(project_id=project_id)
    }


def cost_of_tokens(rows, overrides: dict[str, tuple[float, float]]) -> float:
    """USD for rows of {model, input_tokens, output_tokens}; unknown models cost 0."""
    total = 0.0
    for row in rows:
        price = overrides.get(row["model"]) or public_price(row["model"])
        if price:
            total += row["input_tokens"] * price[0] + row["output_tokens"] * price[1]
    return total
