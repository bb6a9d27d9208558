"""The demo's gateway: a LiteLLM proxy config with a `mock_response` deployment for every model the
demo traffic names (aliases and the providers' own names), so Replay's "Send to gateway" answers in
the demo without a provider key or the network. bin/demo runs the proxy from its own venv
(.venv-litellm, requirements-litellm.txt) beside the portal and points LITELLM_BASE_URL at it.

Pure: no Django. `config()` is the proxy's config (JSON, which LiteLLM reads as YAML).
"""

from __future__ import annotations

from demo import traffic

MOCK_ANSWER = "(demo gateway) A mock answer from the local LiteLLM proxy for {model}: no provider was called."


def model_names() -> list[str]:
    """Every model name a demo span can put in Replay's editor: each alias (LiteLLM's model_group,
    what agents ask for) and each provider's model name (what some SDK spans record), sorted."""
    return sorted({m.alias for m in traffic.MODELS.values()} | {m.provider_model for m in traffic.MODELS.values()})


def config() -> dict:
    """A LiteLLM proxy config: one mock deployment per `model_names()` (chat answers MOCK_ANSWER; the
    embedding model is an embedding deployment), its own price where the demo has one, no retries."""
    embedding = {n for m in traffic.MODELS.values() if "embedding" in m.alias for n in (m.alias, m.provider_model)}
    prices = {name: m for m in traffic.MODELS.values() for name in (m.alias, m.provider_model)}
    deployments = []
    for name in model_names():
        m = prices[name]
        params: dict = {
            "model": f"openai/{name}",
            "api_key": "sk-demo-mock",
            "mock_response": MOCK_ANSWER.format(model=name),
        }
        if m.input_price or m.output_price:
            params |= {"input_cost_per_token": m.input_price, "output_cost_per_token": m.output_price}
        item: dict = {"model_name": name, "litellm_params": params}
        if name in embedding:
            item["model_info"] = {"mode": "embedding"}
        deployments.append(item)
    return {"model_list": deployments, "litellm_settings": {"num_retries": 0, "telemetry": False}}
