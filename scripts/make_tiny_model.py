#!/usr/bin/env python3
"""Regenerate `sample_data/models/tiny-chat`, byte for byte: the model behind `gxft/tiny-chat`.

A Llama-architecture chat model of about one million parameters, small enough to commit and to
fine-tune on a laptop CPU in seconds:
- a byte-level BPE tokenizer (2,048 tokens) trained on `tokenizer_corpus.txt` (English prose from
  Python's documentation) and the sample chat data, with ChatML special tokens;
- a ChatML chat template whose end of turn, `<|im_end|>`, is the model's end-of-sequence token, so
  training and serving stop at the same token; it renders `tools` and `tool_calls` too;
- weights initialised from a fixed seed and saved with `save_pretrained`, so the model loads through
  the normal `from_pretrained` path like any local model.
"""

import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "sample_data" / "models"
SEED = 1234
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Plain `{% %}` tags only: HF renders templates with trim_blocks, and a `{%-` would eat the newline
# after a role, so that the generation prompt would no longer be a prefix of the rendered turn.
CHAT_TEMPLATE = (
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n{% endif %}"
    "You may call these tools:\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if not (tools and loop.first and message.role == 'system') %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}"
    "{% elif message.content %}{% for part in message.content %}{{ part.text }}{% endfor %}{% endif %}"
    "{% if message.tool_calls %}{% for call in message.tool_calls %}"
    "<tool_call>{\"name\": \"{{ call.function.name }}\", \"arguments\": {{ call.function.arguments }}}</tool_call>"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus_lines() -> list[str]:
    lines = (MODELS / "tokenizer_corpus.txt").read_text().splitlines()
    for name in ("sample_training_data.jsonl", "sample_validation_data.jsonl"):
        for row in (ROOT / "sample_data" / name).read_text().splitlines():
            lines.extend(message["content"] for message in json.loads(row)["messages"])
    return lines


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_lines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )


def build_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    return LlamaForCausalLM(config)


def main(output: Path = MODELS / "tiny-chat") -> None:
    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    parameters = sum(p.numel() for p in model.parameters())
    size = sum(f.stat().st_size for f in output.iterdir())
    print(f"wrote {output}: {parameters:,} parameters, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODELS / "tiny-chat")
