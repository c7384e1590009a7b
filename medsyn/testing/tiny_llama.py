"""A tiny LLaMA made on the spot for tests and benchmarks: real weights and tokenizer files, seconds to build.

Test-only: the library never builds models; it loads them (:mod:`medsyn.training.models`).
"""

from __future__ import annotations

from pathlib import Path

from medsyn.atomic import atomic_dir

TINY_TEXTS = [
    "Жалобы на головную боль, головокружение, слабость, повышение артериального давления.",
    "Боль в пояснице с иррадиацией в ногу, усиливается при движении.",
    "Кашель с мокротой, температура 38, насморк, боль в горле в течение трёх дней.",
    "Жалобы на изжогу, тяжесть в эпигастрии после еды, тошноту.",
    "Боли в коленных суставах при ходьбе, утренняя скованность.",
    "### Задание: Напиши медицинскую запись.\n### Вход: кашель; слабость\n### Ответ: ",
]
_CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def make_tiny_llama(out_dir: str | Path, *, vocab_texts: list[str] | None = None, seed: int = 0) -> Path:
    """Build and save a tiny randomly initialised LlamaForCausalLM with a byte-level BPE tokenizer trained here.

    Hidden size 64, 2 layers, 4 heads; special tokens ``<s> </s> <pad> <unk>``; a minimal chat template.
    Written to a temp directory and renamed, so ``out_dir`` is either absent or complete.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    texts = list(vocab_texts or []) + TINY_TEXTS
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = _CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return out
