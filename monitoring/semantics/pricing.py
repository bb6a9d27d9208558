"""Prices per token kind, for calls that carry tokens but no cost (every SDK but LiteLLM, and
LiteLLM's unpriced models, which report 0.0).

A project's own price (Django admin -> Projects -> model prices, for self-hosted models such as
qwen-235b) wins over the public table of PyPI `genai-prices`. Rates are read from genai-prices by
pricing one token kind at a time with its own `calc_price`, so its rules hold exactly as it states
them: input tokens include cache reads and writes (priced at their cache rates), output tokens
include reasoning, and a tiered model switches every token to the tier's rate once the request's
input tokens exceed the tier's start ("cliff" tiers, `genai_prices.types.TieredPrices`).

Prices are applied by the settler (monitoring/semantics/settle.py) when a call is settled, and again when
the project's prices change, so a price change reaches every past call.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal

from genai_prices import Usage, calc_price, data_snapshot
from genai_prices.types import TieredPrices

from monitoring.models import ModelPrice, project_pk

# Token kinds the settler prices; each is a column of otel_calls (see facts.CALL_COST).
KINDS = ("input", "cache_read", "cache_write", "output", "input_audio", "output_audio")
_SAMPLE = 1000

# `gen_ai.provider.name` / `gen_ai.system` / `llm.provider` values (first dotted part, lowercased)
# -> genai-prices provider ids, where they differ.
PROVIDER_IDS = {
    "gcp": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "google_genai": "google",
    "aws": "aws",
    "bedrock": "aws",
    "az": "azure",
    "azure_openai": "azure",
    "mistral_ai": "mistral",
    "xai": "x-ai",
    "x_ai": "x-ai",
    "google-gla": "google",
    "google-vertex": "google",
    "amazon-bedrock": "aws",
    "amazon": "aws",
}


# Bumped whenever the rules below price some call differently (resettle re-prices every project):
# 2 = a provider-less model that only explicit providers list takes their agreed price.
RULES_VERSION = 2


@dataclass(frozen=True)
class Rates:
    """USD per token for each kind, per tier: `tiers[0]` applies from 0 input tokens, `tiers[i]`
    once the call's input tokens exceed `starts[i]` (starts[0] = 0)."""

    starts: tuple[int, ...]
    tiers: tuple[dict[str, float], ...]
    source: str  # "project" or "genai-prices"

    def cost(self, input_tokens: int = 0, output_tokens: int = 0, cache_read: int = 0, cache_write: int = 0) -> float:
        """USD of one call (the same arithmetic as facts.CALL_COST in SQL, for the UI and tests)."""
        tier = self.tiers[sum(1 for s in self.starts[1:] if input_tokens > s)]
        uncached = max(input_tokens - cache_read - cache_write, 0)
        return (
            uncached * tier["input"]
            + cache_read * tier["cache_read"]
            + cache_write * tier["cache_write"]
            + output_tokens * tier["output"]
        )


def _price(model: str, provider: str | None, **usage: int) -> Decimal:
    return Decimal(calc_price(Usage(**usage), model, provider_id=provider).total_price)


def _rates_at(model: str, provider: str | None, n: int) -> dict[str, float]:
    """Per-token rates of a request with `n` input tokens (`n` picks the tier)."""
    m = _SAMPLE
    plain = _price(model, provider, input_tokens=n)
    with_output = _price(model, provider, input_tokens=n, output_tokens=m)
    return {
        "input": float(plain / n),
        # All n input tokens of the kind: genai-prices takes input_tokens as inclusive of them.
        "cache_read": float(_price(model, provider, input_tokens=n, cache_read_tokens=n) / n),
        "cache_write": float(_price(model, provider, input_tokens=n, cache_write_tokens=n) / n),
        "input_audio": float(_price(model, provider, input_tokens=n, input_audio_tokens=n) / n),
        "output": float((with_output - plain) / m),
        "output_audio": float(
            (_price(model, provider, input_tokens=n, output_tokens=m, output_audio_tokens=m) - plain) / m
        ),
    }


# Amazon Bedrock model ids: an optional cross-region prefix, the vendor, the model, a version suffix
# ("us.anthropic.claude-sonnet-4-20250514-v1:0").
_BEDROCK = re.compile(
    r"^(?:(?:us|eu|apac|global|us-gov)\.)?(anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai)\.(.+?)(?:-v\d+(?::\d+)?)?$"
)


def _candidates(model: str, provider: str) -> list[tuple[str, str | None]]:
    provider_id = PROVIDER_IDS.get(provider, provider) or None
    found = [(model, provider_id), (model, None)]
    if "/" in model:  # LiteLLM's provider/model spelling
        head, _, name = model.partition("/")
        found += [(name, PROVIDER_IDS.get(head, head)), (name, None)]
    bedrock = _BEDROCK.match(model)
    if bedrock:
        vendor, name = bedrock.groups()
        found += [(model, "aws"), (name, PROVIDER_IDS.get(vendor, vendor)), (name, None)]
    seen, out = set(), []
    for item in found:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _tier_starts(model: str, provider: str | None) -> tuple[int, ...]:
    result = calc_price(Usage(input_tokens=1), model, provider_id=provider)
    starts: set[int] = set()
    for value in vars(result.model_price).values():
        if isinstance(value, TieredPrices):
            starts.update(t.start for t in value.tiers)
    return tuple(sorted(starts))


def _rates_of(ref: str, provider_id: str | None) -> Rates:
    """Raises LookupError when genai-prices does not know the model (under that provider)."""
    starts = _tier_starts(ref, provider_id)
    base = _SAMPLE if not starts or starts[0] >= _SAMPLE else max(1, starts[0])
    tiers = [_rates_at(ref, provider_id, base)] + [_rates_at(ref, provider_id, s + 1) for s in starts]
    return Rates((0, *starts), tuple(tiers), "genai-prices")


def _sole_price(model: str) -> Rates | None:
    """The rates of a model named without its provider that genai-prices only finds under explicit
    providers (its provider-less lookup matches a provider by model-name patterns, which miss e.g.
    OpenAI's embedding models): the price every provider listing it agrees on, else None (the
    providers disagree: unpriced rather than a guess)."""
    providers = sorted({p.id for p in data_snapshot.get_snapshot().providers for m in p.models if m.is_match(model)})
    found: list[Rates] = []
    for provider_id in providers:
        try:
            rates = _rates_of(model, provider_id)
        except LookupError:
            continue
        if rates not in found:
            found.append(rates)
    return found[0] if len(found) == 1 else None


@functools.lru_cache(maxsize=4096)
def public_rates(model: str, provider: str = "") -> Rates | None:
    """Rates of `model` (as the span names it) from genai-prices, or None when it does not know it."""
    if not model:
        return None
    for ref, provider_id in _candidates(model, provider):
        try:
            return _rates_of(ref, provider_id)
        except LookupError:
            continue
    if not provider:
        return _sole_price(model.partition("/")[2] or model)
    return None


def cost_of_call(
    project_id, model: str, input_tokens: int, output_tokens: int, provider: str = ""
) -> tuple[float, str]:
    """(USD, "priced" | "unpriced" | "") of one call known only by its model and tokens (a re-run's
    answer); the same rates as the settler's."""
    if not input_tokens and not output_tokens:
        return 0.0, ""
    rates = project_rates(project_id).get(model) or public_rates(model, provider)
    if rates is None:
        return 0.0, "unpriced"
    return round(rates.cost(input_tokens, output_tokens), 10), "priced"


def project_rates(project_id) -> dict[str, Rates]:
    """model -> Rates from the project's own prices (cache reads and writes at the input rate); {}
    for a ProjectId that names no project (monitoring.models.project_pk)."""
    found: dict[str, Rates] = {}
    pk = project_pk(project_id)
    for p in ModelPrice.objects.filter(project_id=pk) if pk else ():
        per_in, per_out = float(p.input_per_million) / 1e6, float(p.output_per_million) / 1e6
        tier = {"input": per_in, "cache_read": per_in, "cache_write": per_in, "input_audio": per_in}
        tier |= {"output": per_out, "output_audio": per_out}
        found[p.model] = Rates((0,), (tier,), "project")
    return found


@dataclass
class PriceBook:
    """The rates of every (model, provider) a question or a settle pass needs, as query parameters.

    Build it with the pairs present (`PriceBook.for_pairs(project_id, pairs)`); `params()` gives the
    arrays facts.CALL_COST reads: `p_keys` ("model\\tprovider"), `p_starts` and one array of per-tier
    rates per token kind. A pair without a price is absent: its calls are "unpriced".
    """

    entries: dict[tuple[str, str], Rates] = field(default_factory=dict)

    @classmethod
    def for_pairs(cls, project_id, pairs) -> PriceBook:
        own = project_rates(project_id)
        entries = {}
        for model, provider in pairs:
            rates = own.get(model) or public_rates(model, provider or "")
            if rates is not None:
                entries[(model, provider)] = rates
        return cls(entries)

    def params(self) -> dict:
        keys, starts = [], []
        per_kind: dict[str, list[list[float]]] = {k: [] for k in KINDS}
        for (model, provider), rates in sorted(self.entries.items()):
            keys.append(f"{model}\t{provider}")
            starts.append(list(rates.starts[1:]))
            for kind in KINDS:
                per_kind[kind].append([tier[kind] for tier in rates.tiers])
        return {"p_keys": keys, "p_starts": starts, **{f"p_{k}": v for k, v in per_kind.items()}}

    def fingerprint(self) -> str:
        """Changes when any rate changes: the settler re-prices a project's calls when it does."""
        text = repr(sorted((k, r.starts, r.tiers) for k, r in self.entries.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
