"""Canary exposure of a fine-tuned generator (Carlini et al., *The Secret Sharer*) and secret scans of its notes.

Exposure of a canary with secret ``s``: draw ``N - 1`` other secrets uniformly from the same space, score every one
of the ``N`` by the model's log-likelihood of the canary's answer with it in place (given the canary's prompt), and
take the secret's rank ``r`` (1 = most likely; ties count against the secret). Exposure is
``log2(N) - log2(r)`` bits: 0 when the secret is the least likely, ``log2(N)`` when it beats every candidate. A model
that never saw the canary ranks its secret uniformly, so its expected exposure is about ``log2(e) ≈ 1.44`` bits.

Models load lazily (torch, transformers, peft are imported inside the functions).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medsyn.errors import InputError
from medsyn.training.canaries import Canary, draw_secret, read_manifest

DEFAULT_CANDIDATES = 1000


@dataclass(frozen=True)
class Exposure:
    canary: str
    secret: str
    rank: int
    candidates: int
    exposure: float
    """Bits, ``log2(candidates) - log2(rank)``."""
    log_likelihood: float
    """Of the canary's answer with its own secret (nats)."""

    @property
    def max_exposure(self) -> float:
        return math.log2(self.candidates)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"max_exposure": round(self.max_exposure, 4)}


@dataclass(frozen=True)
class SecretHit:
    canary: str
    secret: str
    note_id: str
    where: str
    """``file:line`` of the note, or its id when notes came without a place."""


def candidate_secrets(secret: str, n: int, rng: np.random.Generator) -> list[str]:
    """``secret`` first, then ``n - 1`` distinct other secrets drawn uniformly from the secret space."""
    if n < 2:
        raise InputError(f"candidates: expected at least 2, got {n}")
    out, seen = [secret], {secret}
    while len(out) < n:
        s = draw_secret(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def rank_of_first(scores: list[float]) -> int:
    """Rank of ``scores[0]`` among all (1 = highest); a tie counts as ranking above it.

    >>> rank_of_first([-1.0, -3.0, -0.5, -1.0])
    3
    """
    return 1 + sum(1 for s in scores[1:] if s >= scores[0])


def exposure_bits(rank: int, n: int) -> float:
    """Bits of exposure of a secret at ``rank`` among ``n`` candidates.

    >>> exposure_bits(1, 1024), exposure_bits(1024, 1024)
    (10.0, 0.0)
    """
    return math.log2(n) - math.log2(rank)


def answer_log_likelihoods(
    model: Any, tokenizer: Any, prompt: str, answers: list[str], *, batch_size: int
) -> list[float]:
    """Summed log-probability (nats) of each answer's tokens given ``prompt``, tokenised as in training.

    The tokens all answers share (prompt and canary prefix: most of each sequence) run once; their cache is copied
    for each batch of the differing tails, so N candidates cost one prefix plus N short tails.
    """
    import torch

    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    seqs = [prompt_ids + list(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    shared = min(len(s) for s in seqs) - 1  # every tail keeps a token, scored from the shared part's last logits
    shared = next((i for i in range(shared) if any(s[i] != seqs[0][i] for s in seqs)), shared)
    device = next(model.parameters()).device
    with torch.no_grad():
        head = model(input_ids=torch.tensor([seqs[0][:shared]], device=device), use_cache=True)
        head_logp = torch.log_softmax(head.logits[0].float(), dim=-1)
        # answer tokens inside the shared part count for every answer alike
        start = len(prompt_ids)
        head_score = float(sum(head_logp[i - 1, seqs[0][i]] for i in range(start, shared)))
        return [
            head_score + x
            for i in range(0, len(seqs), batch_size)
            for x in _tail_scores(
                model, head.past_key_values, head_logp[-1], [s[shared:] for s in seqs[i : i + batch_size]]
            )
        ]


def _cache_kwarg(model: Any) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache`` in some release of the supported range."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(inner).forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _tail_scores(model: Any, cache: Any, first_logp: Any, tails: list[list[int]]) -> list[float]:
    import copy

    import torch

    device = first_logp.device
    width = max(len(t) for t in tails)
    ids = torch.zeros((len(tails), width), dtype=torch.long, device=device)
    mask = torch.zeros((len(tails), width), dtype=torch.long, device=device)
    for i, t in enumerate(tails):
        ids[i, : len(t)] = torch.tensor(t)
        mask[i, : len(t)] = 1
    past = copy.deepcopy(cache)
    past.batch_repeat_interleave(len(tails))
    prefix_mask = torch.ones((len(tails), past.get_seq_length()), dtype=torch.long, device=device)
    mask_all = torch.cat([prefix_mask, mask], 1)
    logits = model(input_ids=ids, attention_mask=mask_all, **{_cache_kwarg(model): past}).logits
    logp = torch.cat([first_logp.expand(len(tails), 1, -1), torch.log_softmax(logits[:, :-1].float(), dim=-1)], 1)
    picked = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask
    return [float(x) for x in picked.sum(dim=1)]


def exposures(
    model: Any,
    tokenizer: Any,
    canaries: list[Canary],
    *,
    n_candidates: int = DEFAULT_CANDIDATES,
    rng: np.random.Generator,
    batch_size: int = 64,
) -> list[Exposure]:
    """The exposure of each canary under a loaded model (candidates drawn from ``rng`` in canary order)."""
    out = []
    for c in canaries:
        secrets = candidate_secrets(c.secret, n_candidates, rng)
        scores = answer_log_likelihoods(
            model, tokenizer, c.prompt, [c.with_secret(s) for s in secrets], batch_size=batch_size
        )
        rank = rank_of_first(scores)
        out.append(Exposure(c.id, c.secret, rank, n_candidates, exposure_bits(rank, n_candidates), scores[0]))
    return out


def canaries_of(canaries: list[Canary] | str | Path) -> list[Canary]:
    """Canaries given as such or as the path of their manifest."""
    return canaries if isinstance(canaries, list) else read_manifest(canaries)


def measure_exposure(
    adapter: str | Path | None,
    canaries: list[Canary] | str | Path,
    *,
    base: str | None = None,
    n_candidates: int = DEFAULT_CANDIDATES,
    rng: np.random.Generator,
    device: str | None = None,
    batch_size: int = 64,
) -> list[Exposure]:
    """Exposure of each canary under a LoRA ``adapter`` on its base (``base`` defaults to the one in the adapter's
    manifest), or under ``base`` alone when ``adapter`` is None (a model that never saw the canaries)."""
    from medsyn.training.models import load_causal_lm, read_manifest

    if adapter is None and base is None:
        raise InputError("give an adapter or a base model to measure canary exposure on")
    spec = base or str(read_manifest(adapter)["base"])  # type: ignore[arg-type]
    model, tokenizer = load_causal_lm(spec, adapter=adapter, device=device)
    planted = canaries_of(canaries)
    return exposures(model, tokenizer, planted, n_candidates=n_candidates, rng=rng, batch_size=batch_size)


_DIGIT_GAPS = re.compile(r"(?<=\d)[\s\-.]+(?=\d)")


def scan_secrets(notes: Iterable[tuple[str, str, str]], canaries: list[Canary] | str | Path) -> list[SecretHit]:
    """Notes (``(note_id, where, text)``) holding a canary's secret as a whole number, also when its digits are split
    by spaces, dashes or dots ("048 213", "04-82-13")."""
    patterns = [(c, re.compile(rf"(?<!\d){re.escape(c.secret)}(?!\d)")) for c in canaries_of(canaries)]
    hits = []
    for note_id, where, text in notes:
        joined = _DIGIT_GAPS.sub("", text)
        for c, pattern in patterns:
            if pattern.search(text) or pattern.search(joined):
                hits.append(SecretHit(c.id, c.secret, note_id, where))
    return hits


def note_texts(paths: Iterable[str | Path]) -> list[tuple[str, str, str]]:
    """``(note_id, where, text)`` of every note (rejected ones too: a secret must not leak anywhere) in generate run
    folders, export folders or JSONL files."""
    from medsyn.evaluation.data import read_notes

    return [(n.id, n.where, n.text) for p in paths for n in read_notes(p, accepted_only=False).notes]


def report(
    exposed: list[Exposure],
    hits: list[SecretHit],
    *,
    scanned: int | None,
    settings: dict[str, Any],
    fail_exposure: float | None = None,
) -> dict[str, Any]:
    """The JSON report: exposures, secret hits, and the findings (any hit; any exposure >= ``fail_exposure``)."""
    over = [e.canary for e in exposed if fail_exposure is not None and e.exposure >= fail_exposure]
    return {
        "settings": settings,
        "exposure": [e.to_json() for e in exposed],
        "exposure_mean": round(sum(e.exposure for e in exposed) / len(exposed), 4) if exposed else None,
        "notes_scanned": scanned,
        "secret_hits": [asdict(h) for h in hits],
        "findings": {"secrets_in_notes": len(hits), "exposure_over_threshold": over},
    }
