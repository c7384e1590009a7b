"""Training a local model for the task: the instruction set of the paper's two tasks (with optional canaries), LoRA
fine-tuning (TRL + PEFT) and the models (packaged GGUF bases, adapters and their manifests).

torch, transformers and peft are imported inside the functions that need them.
"""

import os

from medsyn.lazy import lazy_exports

# Every transformers import of the package sits below this module. huggingface_hub reads the variable once, at its
# own import, and would otherwise start a thread that reports model loads to the Hub (MedSyn talks to 127.0.0.1 only).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

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
