"""Given helpers for fine-tuning and evaluating a chat language model (HW3, ``homework/hw3/hw3.ipynb``, Part D,
and ``benchmarks/hw3_train_adapters.py``).

They use what the student writes only through arguments (``collate``: the notebook's ``collate_sft``), so
the same code serves the notebook, the benchmark that trains the shipped adapters, and the tests:

* ``chat_complete(model, tokenizer, prompts)``: greedy answers to single-turn prompts, batched with
  left padding (every prompt ends where generation starts);
* ``code_conversation(problem)``: a ``gc.data.code_tasks`` problem as a training conversation;
* ``assistant_loss(model, examples, collate, pad_id)``: mean cross-entropy on the assistant tokens;
* ``train_adapter(model, examples, collate, pad_id, steps=... | minutes=...)``: AdamW on whatever
  requires grad, warm-up then cosine decay, a per-batch progress bar;
* ``lora_layers`` / ``adapters_off`` / ``remove_lora``: find, silence and take out LoRA layers written
  to the homework's contract (attributes ``base``, ``lora_A``, ``lora_B``, ``scaling``, ``merged``);
* ``generation_speed(model, tokenizer, prompt, new_tokens)``: tokens/s with and without the KV cache.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

IGNORE_INDEX = -100

__all__ = ["IGNORE_INDEX", "adapters_off", "assistant_loss", "chat_complete", "code_conversation",
           "generation_speed", "lora_layers", "remove_lora", "train_adapter"]


def chat_complete(model: nn.Module, tokenizer, prompts: Sequence[str], max_new_tokens: int = 128,
                  batch_size: int = 20, progress: bool = True) -> list[str]:
    """Greedy answers of ``model`` to single-turn user prompts (special tokens dropped)."""
    if isinstance(prompts, str):
        raise TypeError("chat_complete: prompts must be a list of strings, got one string (wrap it in a list)")
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    answers: list[str] = []
    try:
        batches = range(0, len(prompts), batch_size)
        for i in tqdm(batches, desc="generating", unit="batch", leave=False, disable=not progress):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in prompts[i:i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(_device(model)) for k, v in enc.items()}
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return answers


def code_conversation(problem: dict) -> list[dict]:
    """A ``gc.data.code_tasks`` problem as a training conversation: the request, then the reference
    solution in a ```python fence."""
    return [{"role": "user", "content": problem["prompt"]},
            {"role": "assistant", "content": f"```python\n{problem['solution']}\n```"}]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def assistant_loss(model: nn.Module, examples: Sequence[dict], collate: Callable, pad_id: int,
                   batch_size: int = 8) -> float:
    """Mean cross-entropy (nats per token) over the labelled (assistant) tokens of ``examples``
    (dicts from ``build_sft_example``), batched with ``collate(batch, pad_id)``."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(_device(model)) for k, v in collate(list(examples[i:i + batch_size]), pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            total += nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(),
                                                 ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((labels != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("assistant_loss: no labelled tokens in the examples (every label is -100)")
    return total / count


def train_adapter(model: nn.Module, examples: Sequence[dict], collate: Callable, pad_id: int, steps: int | None = None,
                  minutes: float | None = None, lr: float = 1e-3, batch_size: int = 8, warmup: int = 10,
                  seed: int = 0, desc: str = "LoRA training") -> list[float]:
    """AdamW (no weight decay) on the parameters that require grad, for ``steps`` batches or ``minutes`` of
    wall time (exactly one of them): linear warm-up over ``warmup`` steps, then cosine decay to 0 over the
    run. Batches are drawn with replacement from ``examples`` by a seeded generator. Returns each batch's
    loss; the model is left in eval mode."""
    if (steps is None) == (minutes is None):
        raise ValueError("train_adapter: give exactly one of steps= or minutes=")
    if not examples:
        raise ValueError("train_adapter: no training examples")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("train_adapter: no parameter requires grad (did you call mark_only_lora_as_trainable?)")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    device = _device(model)
    model.train()
    losses: list[float] = []
    budget = None if minutes is None else 60.0 * minutes
    bar = tqdm(total=steps, desc=desc, unit="batch")
    start = time.perf_counter()
    step = 0
    while True:
        done = (time.perf_counter() - start) / budget if budget is not None else step / steps
        if done >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * done))
        idx = torch.randint(len(examples), (batch_size,), generator=gen).tolist()
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad_id).items()}
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    return losses


def _is_lora(module: nn.Module) -> bool:
    return all(hasattr(module, a) for a in ("base", "lora_A", "lora_B", "scaling"))


def lora_layers(model: nn.Module) -> list[nn.Module]:
    """Every module with the homework's LoRA attributes (``base``, ``lora_A``, ``lora_B``, ``scaling``)."""
    return [m for m in model.modules() if _is_lora(m)]


@contextlib.contextmanager
def adapters_off(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the model computes as the base model: every LoRA layer's scaling is 0 (unmerged
    first with its real scaling); afterwards the scalings come back and the model is in eval mode."""
    layers = lora_layers(model)
    model.train()  # unmerge with the real scaling
    saved = [layer.scaling for layer in layers]
    for layer in layers:
        layer.scaling = 0.0
    model.eval()
    try:
        yield model
    finally:
        model.train()
        for layer, scaling in zip(layers, saved):
            layer.scaling = scaling
        model.eval()


def remove_lora(model: nn.Module) -> int:
    """Put every LoRA layer's base layer back in its place (unmerged first, so the base weights are the
    original ones). Returns how many were removed."""
    removed = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if _is_lora(child):
                if getattr(child, "merged", False):
                    child.unmerge()
                setattr(module, name, child.base)
                removed += 1
    return removed


def generation_speed(model: nn.Module, tokenizer, prompt: str, new_tokens: int = 64) -> dict[bool, float]:
    """Greedy generation speed, tokens per second, {True: with the KV cache, False: without}; exactly
    ``new_tokens`` tokens each (end-of-turn suppressed by min_new_tokens). A short untimed generation
    runs first, so the first timed run does not pay for one-off set-up (kernel selection, allocator
    growth, generate's lazy imports): without it the cached run, timed first, looked slower than it is."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    enc = {k: v.to(_device(model)) for k, v in tokenizer(text, return_tensors="pt", add_special_tokens=False).items()}
    model.eval()
    with torch.no_grad():
        model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False, use_cache=True,
                       pad_token_id=tokenizer.pad_token_id)
    speeds = {}
    for use_cache in (True, False):
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 use_cache=use_cache, pad_token_id=tokenizer.pad_token_id)
        if out.shape[1] - enc["input_ids"].shape[1] != new_tokens:
            raise RuntimeError(f"generation_speed: generated {out.shape[1] - enc['input_ids'].shape[1]} tokens, "
                               f"asked for {new_tokens}")
        speeds[use_cache] = new_tokens / (time.perf_counter() - start)
    return speeds
