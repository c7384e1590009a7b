"""What a generate run is asked to do (:class:`GenerationConfig`) and what it did (:class:`RunSummary`)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medsyn.errors import ParameterError
from medsyn.generation.filter import FilterConfig
from medsyn.generation.prompts import DEFAULT_TEMPLATE, PromptTemplate, load_template


@dataclass(frozen=True)
class GenerationConfig:
    template: str = DEFAULT_TEMPLATE
    """A packaged template name or a template JSON file."""
    seed: int = 0
    temperature: float = 1.0
    max_tokens: int = 1024
    max_attempts: int = 3
    """Attempts per sample (per code: ``target_per_code * max_attempts``) before giving up."""
    target_per_code: int | None = None
    max_cost: float | None = None
    """Stop dispatching once the estimated cost (USD) would exceed this; may be raised on resume."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    shots: int | None = None
    """Example notes per prompt of a few-shot template, instead of the template's own ``shots`` (None: keep)."""
    stop: tuple[str, ...] | None = None
    """Stop sequences instead of the template's (None: the template's, else the backend's default)."""
    shot_selection: str = "random"
    """How a few-shot prompt's real notes are chosen (:data:`medsyn.sampling.draw.SHOT_SELECTIONS`)."""
    candidates: int = 1
    """Completions asked for per attempt (distinct seeds); the one the filter ranks best is the attempt's note."""

    def load_template(self) -> PromptTemplate:
        """The template with this config's overrides (they change its content hash, so provenance sees them)."""
        t = load_template(self.template)
        if self.shots is not None:
            if not t.shots:
                raise ParameterError(f"{{shots}} applies to a few-shot template; {t.name!r} is not one")
            t = dataclasses.replace(t, shots=self.shots)
        if self.stop is not None:
            t = dataclasses.replace(t, stop=tuple(self.stop))
        return t

    def __post_init__(self) -> None:
        from medsyn.sampling.draw import SHOT_SELECTIONS

        if self.shot_selection not in SHOT_SELECTIONS:
            raise ParameterError(
                f"{{shot_selection}} must be one of {', '.join(SHOT_SELECTIONS)}, got {self.shot_selection!r}"
            )
        if not 1 <= self.candidates <= 16:
            raise ParameterError(f"{{candidates}} must be from 1 to 16, got {self.candidates}")
        if self.shots is not None and not 1 <= self.shots <= 32:
            raise ParameterError(f"{{shots}} must be from 1 to 32, got {self.shots}")
        if self.max_attempts < 1:
            raise ParameterError(f"{{max_attempts}} must be >= 1, got {self.max_attempts}")
        if self.target_per_code is not None and self.target_per_code < 1:
            raise ParameterError(f"{{target_per_code}} must be >= 1, got {self.target_per_code}")
        if self.max_cost is not None and self.max_cost <= 0:
            raise ParameterError(f"{{max_cost}} must be > 0, got {self.max_cost}")
        if self.max_tokens < 1:
            raise ParameterError(f"{{max_tokens}} must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ParameterError(f"{{temperature}} must be in [0, 2], got {self.temperature}")


@dataclass
class RunSummary:
    run_id: str
    out_dir: Path
    status: str
    """``done`` (every group reached its quota), ``incomplete`` (some gave up), ``budget`` (max cost reached)."""
    requested: int
    accepted: int
    rejected: int
    failed: int
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    elapsed_s: float
    generated_now: int
    """Attempts made by this call (the rest were read back from an earlier, interrupted call)."""
    lost: int = 0
    """Notes the store recorded that the folder no longer had (found on resume; generated again under new ids)."""

    @property
    def produced_nothing(self) -> bool:
        """Notes were asked for and none was accepted: the CLI reports this as a finding (exit 1), not success."""
        return self.requested > 0 and self.accepted == 0

    @property
    def notes_per_s(self) -> float:
        return self.generated_now / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["notes_per_s"] = round(self.notes_per_s, 3)
        return d
