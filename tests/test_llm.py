"""gc.llm: the given fine-tuning and evaluation helpers of HW3's Part D, tested with a LoRA layer written
here to the homework's attribute contract (the solution is not part of the student edition)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import genai_course as gc
from genai_course.llm import IGNORE_INDEX


class Lora(nn.Module):
    """The contract gc.llm relies on: base, lora_A, lora_B, scaling, merged, merge/unmerge on eval/train."""

    def __init__(self, base: nn.Linear, r: int = 2, alpha: float = 4.0):
        super().__init__()
        self.base, self.scaling, self.merged = base, alpha / r, False
        gen = torch.Generator().manual_seed(base.in_features * 1000 + base.out_features)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features, generator=gen) * 0.1)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        base.weight.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + x @ self.lora_A.T @ self.lora_B.T * self.scaling

    @torch.no_grad()
    def _shift(self, sign: int) -> None:
        self.base.weight += sign * self.scaling * self.lora_B @ self.lora_A

    def merge(self) -> None:
        if not self.merged:
            self._shift(+1)
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            self._shift(-1)
            self.merged = False

    def train(self, mode: bool = True):
        super().train(mode)
        self.unmerge() if mode else self.merge()
        return self


def collate(batch, pad_id):
    L = max(len(b["input_ids"]) for b in batch)
    out = {"input_ids": torch.full((len(batch), L), pad_id), "labels": torch.full((len(batch), L), IGNORE_INDEX),
           "attention_mask": torch.zeros(len(batch), L, dtype=torch.long)}
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        out["input_ids"][i, :n], out["labels"][i, :n], out["attention_mask"][i, :n] = b["input_ids"], b["labels"], 1
    return out


def adapted_tiny(seed: int = 0) -> nn.Module:
    model = gc.models.tiny_llama(seed)
    for layer in model.model.layers:
        layer.self_attn.q_proj = Lora(layer.self_attn.q_proj)
        layer.self_attn.v_proj = Lora(layer.self_attn.v_proj)
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(("lora_A", "lora_B")))
    return model


def examples(n: int = 6, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        ids = torch.randint(3, 256, (8 + i,), generator=gen)
        labels = ids.clone()
        labels[: 4 + i % 3] = IGNORE_INDEX  # a "prompt" part without labels
        out.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})
    return out


def test_assistant_loss_is_the_mean_over_labelled_tokens_only():
    model, exs = gc.models.tiny_llama(0).eval(), examples()
    total, count = 0.0, 0
    with torch.no_grad():
        for ex in exs:
            logits = model(input_ids=ex["input_ids"][None]).logits[0, :-1]
            target = ex["labels"][1:]
            keep = target != IGNORE_INDEX
            total += nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            count += int(keep.sum())
    # batched with padding (batch_size 4: one batch of 4, one of 2) must give the per-example mean
    assert gc.llm.assistant_loss(model, exs, collate, pad_id=0, batch_size=4) == pytest.approx(total / count, rel=1e-5)
    unlabelled = [{**e, "labels": torch.full_like(e["labels"], IGNORE_INDEX)} for e in exs]
    with pytest.raises(ValueError, match="no labelled tokens"):
        gc.llm.assistant_loss(model, unlabelled, collate, pad_id=0)


def test_train_adapter_lowers_the_loss_and_trains_only_what_requires_grad():
    model, exs = adapted_tiny(), examples(4)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    before = gc.llm.assistant_loss(model, exs, collate, 0)
    model.train()  # train_adapter must work from either mode; leave eval mode at the end
    losses = gc.llm.train_adapter(model, exs, collate, 0, steps=60, lr=1e-2, batch_size=4, warmup=5)
    assert len(losses) == 60 and not model.training
    assert gc.llm.assistant_loss(model, exs, collate, 0) < before - 0.3
    model.train()  # unmerge: the base weights must be the originals (up to float rounding of the round trip)
    assert all(torch.allclose(model.state_dict()[k], v, atol=1e-6) for k, v in frozen.items())
    with pytest.raises(ValueError, match="exactly one of"):
        gc.llm.train_adapter(model, exs, collate, 0)
    with pytest.raises(ValueError, match="no parameter requires grad"):
        gc.llm.train_adapter(gc.models.tiny_llama(0).requires_grad_(False), exs, collate, 0, steps=1)


def test_train_adapter_by_minutes_and_seeded():
    a, b = adapted_tiny(), adapted_tiny()
    la = gc.llm.train_adapter(a, examples(), collate, 0, steps=5, seed=3)
    lb = gc.llm.train_adapter(b, examples(), collate, 0, steps=5, seed=3)
    assert la == lb
    timed = gc.llm.train_adapter(adapted_tiny(), examples(), collate, 0, minutes=0.01)
    assert len(timed) >= 1 and all(math.isfinite(x) for x in timed)


def test_adapters_off_and_remove_lora():
    base, model = gc.models.tiny_llama(0).eval(), adapted_tiny().eval()
    for layer in gc.llm.lora_layers(model):
        layer.train()
        with torch.no_grad():
            layer.lora_B.normal_()
        layer.eval()
    x = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        plain, adapted = base(x).logits, model(x).logits
        assert not torch.allclose(plain, adapted, atol=1e-3)
        with gc.llm.adapters_off(model):
            assert torch.allclose(model(x).logits, plain, atol=1e-5)
        assert torch.allclose(model(x).logits, adapted, atol=1e-5) and not model.training
        assert gc.llm.remove_lora(model) == 4 and gc.llm.lora_layers(model) == []
        assert isinstance(model.model.layers[0].self_attn.q_proj, nn.Linear)
        assert torch.allclose(model(x).logits, plain, atol=1e-5)  # merged layers were unmerged first


def test_code_conversation():
    problem = gc.data.code_tasks("train", 1)[0]
    user, assistant = gc.llm.code_conversation(problem)
    assert user == {"role": "user", "content": problem["prompt"]}
    assert assistant["role"] == "assistant" and assistant["content"] == f"```python\n{problem['solution']}\n```"


@pytest.fixture(scope="module")
def smollm2():
    return gc.models.load_smollm2()


def test_chat_complete_matches_one_by_one_generation(smollm2):
    """Batched with left padding, each answer equals the prompt's own unpadded greedy answer."""
    model, tok = smollm2
    side = tok.padding_side
    prompts = ["What is 2 + 3?", "Name a colour of the sky on a clear day, in one word please."]
    batched = gc.llm.chat_complete(model, tok, prompts, max_new_tokens=8, progress=False)
    single = [gc.llm.chat_complete(model, tok, [p], max_new_tokens=8, progress=False)[0] for p in prompts]
    assert batched == single and all(a.strip() for a in batched)
    assert tok.padding_side == side, "chat_complete must restore the tokenizer's padding side"
    with pytest.raises(TypeError, match="list of strings"):
        gc.llm.chat_complete(model, tok, "hello")


def test_generation_speed_reports_both(smollm2):
    model, tok = smollm2
    speeds = gc.llm.generation_speed(model, tok, "Hi", new_tokens=4)
    assert set(speeds) == {True, False} and all(s > 0 for s in speeds.values())
