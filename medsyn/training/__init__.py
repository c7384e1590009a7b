"""Training a local model for the task: the instruction set of the paper's two tasks (with optional canaries), LoRA
fine-tuning (TRL + PEFT) and the models (packaged GGUF bases, adapters and their manifests).

torch, transformers and peft are imported inside the functions that need them.
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "build_instructions": "instructions",
        "build_dataset": "instructions",
        "BuildOptions": "instructions",
        "read_dataset": "instructions",
        "make_canaries": "canaries",
        "merge": "finetune",
        "TrainConfig": "finetune",
        "resolve_base": "models",
        "load_base": "models",
        "load_causal_lm": "models",
        "adapter_hash": "models",
    },
)
