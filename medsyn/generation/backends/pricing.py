"""Token prices for cost estimates (USD per 1,000 tokens: prompt, completion).

OpenAI's public list prices as of 2024 (https://openai.com/api/pricing); they change, so a run can override them
(``--price 0.03,0.06``). Models not listed (a local vLLM / llama.cpp / Ollama server) cost 0.

>>> price_for("gpt-4-0613")
(0.03, 0.06)
>>> round(cost_usd(1000, 500, (0.03, 0.06)), 4)
0.06
"""

from __future__ import annotations

from medsyn.errors import ParameterError

Price = tuple[float, float]

PRICES: dict[str, Price] = {
    "gpt-4": (0.03, 0.06),
    "gpt-4-32k": (0.06, 0.12),
    "gpt-4-turbo": (0.01, 0.03),
    "gpt-4-1106-preview": (0.01, 0.03),
    "gpt-4-0125-preview": (0.01, 0.03),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4o-mini": (0.00015, 0.0006),
    "gpt-4.1": (0.002, 0.008),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-3.5-turbo": (0.0005, 0.0015),
}


def price_for(model: str, override: Price | None = None) -> Price:
    """The price of ``model``: the override, else the longest listed prefix (dated snapshots), else free."""
    if override is not None:
        return override
    best = ""
    for name in PRICES:
        if (model == name or model.startswith(name + "-")) and len(name) > len(best):
            best = name
    return PRICES[best] if best else (0.0, 0.0)


def parse_price(price: str) -> Price:
    """``"0.03,0.06"`` -> (0.03, 0.06) (USD per 1k prompt, completion tokens)."""
    try:
        a, b = (float(x) for x in price.split(","))
    except ValueError:
        raise ParameterError(f"{{price}} must be 'PROMPT,COMPLETION' USD per 1k tokens, got {price!r}") from None
    if a < 0 or b < 0:
        raise ParameterError("{price} values must be >= 0")
    return a, b


def cost_usd(prompt_tokens: int, completion_tokens: int, price: Price) -> float:
    return prompt_tokens / 1000 * price[0] + completion_tokens / 1000 * price[1]
