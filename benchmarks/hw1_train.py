"""Train the HW1 character LM (the solution notebook's code) on a time budget; write the checkpoint.

    .venv/bin/python benchmarks/hw1_train.py --minutes 10 --out data/checkpoints/hw1_charlm.safetensors

Gate (issue #5): validation loss <= 1.60 nats/char on the fixed Shakespeare split within <= 10
minutes of training on 2 CPU cores. Prints the configuration, throughput and the final figures.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path

import torch

import genai_course as gc
from genai_course.grading import reference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", type=Path, default=None, help="write the checkpoint here")
    p.add_argument("--device", default="cpu", help="cpu (the gate's setting), cuda, or auto (a GPU when present)")
    p.add_argument("--eval-windows", type=int, default=None, help="cap validation windows (default: all)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="override LMConfig fields, e.g. --set d_model=128 n_heads=4")
    a = p.parse_args()
    torch.set_num_threads(2)
    ref = reference("hw1")
    gc.seed_everything(0)
    train_text, val_text = gc.data.shakespeare_splits()
    tok = ref.CharTokenizer(train_text + val_text)
    train_ids, val_ids = torch.tensor(tok.encode(train_text)), torch.tensor(tok.encode(val_text))
    overrides = {k: type(getattr(ref.LMConfig, k))(v) for k, v in (item.split("=") for item in a.set)}
    cfg = ref.LMConfig(vocab_size=tok.vocab_size, **overrides)
    device = gc.get_device() if a.device == "auto" else torch.device(a.device)
    model = ref.TransformerLM(cfg).to(device)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"config {asdict(cfg)}; {n_params:,} parameters; batch {a.batch}, lr {a.lr}, {a.minutes} min on {device}")
    hist = gc.training.train_lm(model, train_ids, ref.lm_loss, context=cfg.context, batch_size=a.batch, lr=a.lr,
                                minutes=a.minutes, log_every=50)
    val = gc.training.lm_eval_loss(model, val_ids, cfg.context, ref.lm_loss, max_windows=a.eval_windows)
    figures = {"val_loss": val, "train_seconds": hist.seconds, "tokens": hist.tokens,
               "tokens_per_second": hist.tokens / hist.seconds, "steps": hist.steps[-1] if hist.steps else 0,
               "parameters": n_params, "uniform_loss": math.log(tok.vocab_size)}
    print(json.dumps(figures, indent=2))
    if device.type != "cpu":
        print(f"(trained on {device}: the gate is defined for 2 CPU cores, so it is not judged here)")
    else:
        print(f"gate: validation loss {val:.3f} <= 1.60 within {hist.seconds / 60:.1f} <= 10 min:",
              "PASS" if val <= 1.60 and hist.seconds <= 600 + 5 else "FAIL")
    if a.out:
        meta = {**figures, "device": str(device), "config": asdict(cfg), "batch_size": a.batch, "lr": a.lr,
                "command": f"benchmarks/hw1_train.py --minutes {a.minutes} --batch {a.batch} --lr {a.lr}"
                           + (f" --set {' '.join(a.set)}" if a.set else ""),
                "history": {"steps": hist.steps, "train_loss": hist.train_loss}}
        gc.save_checkpoint(model.cpu(), a.out, meta=meta)
        print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
