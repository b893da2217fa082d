"""A tiny Llama-shaped causal LM built on the fly: random weights and a BPE tokenizer trained here.

Nothing is downloaded. The folder it writes loads with `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained`, like any local model a user keeps.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS_FILES = ["finetune/gpt_hotpotqa.jsonl"]
SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def _corpus(shared: Path, limit: int = 400) -> list[str]:
    texts = []
    for name in CORPUS_FILES:
        for line in (shared / name).read_text().splitlines()[:limit]:
            texts.extend(m["content"] for m in json.loads(line)["messages"])
    return texts


def build_tiny_model(out: Path, shared: Path, vocab_size: int = 512, hidden: int = 64, layers: int = 2,
                     seed: int = 0) -> Path:
    """Write a tiny model folder at `out` (reused if it is already there) and return it."""
    out = Path(out)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(shared), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=1024, bos_token_id=fast.bos_token_id,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out
