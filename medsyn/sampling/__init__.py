"""Sampling: from the knowledge graph to samples (a code, its symptoms, example notes, demographics).

Step 2 of the data path. :mod:`~medsyn.sampling.tables` loads the graph's counts into arrays once per graph
version, :mod:`~medsyn.sampling.weights` turns them into the paper's code weights and plans, a strategy
(:mod:`~medsyn.sampling.strategies`) draws symptoms, and :func:`draw_samples` (through one :class:`SamplingRequest`,
shared by ``sample`` and ``generate``) yields :class:`Sample` objects. A new strategy: a class registered with
:func:`register_strategy`.
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "draw_samples": "draw",
        "SamplingRequest": "draw",
        "add_examples": "draw",
        "Sample": "samples",
        "read_samples": "samples",
        "write_samples": "samples",
        "load_tables": "tables",
        "SamplingTables": "tables",
        "code_weights": "tables",
        "real_note_counts": "tables",
        "CodeWeight": "weights",
        "plan_counts": "weights",
        "topup_counts": "weights",
        "draw_demographics": "demographics",
        "register_strategy": "strategies",
        "get_strategy": "strategies",
    },
)
