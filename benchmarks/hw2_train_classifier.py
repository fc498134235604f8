"""Train the digit classifier HW2 uses to judge generated and inpainted digits; write the checkpoint.

    .venv/bin/python benchmarks/hw2_train_classifier.py --out data/checkpoints/hw2_digit_classifier.safetensors

``genai_course.models.DigitClassifier`` on MNIST padded to 32x32 in [-1, 1] (the training split,
with small random shifts so it tolerates slightly off-centre strokes), AdamW, one-cycle schedule.
Prints test accuracy; the checkpoint's metadata records the command, time and figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import genai_course as gc


def shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Roll each image by up to max_shift pixels (the background is uniform, so rolling is a shift)."""
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=g).tolist()
    return torch.roll(x, (dy, dx), dims=(2, 3))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(2)
    g = gc.seed_everything(0)
    x, y = gc.data.load_mnist32("train")
    xt, yt = gc.data.load_mnist32("test")
    model = gc.models.DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    steps = a.epochs * (len(x) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps)
    start = time.perf_counter()
    bar = tqdm(total=steps, desc="classifier")
    for _ in range(a.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(len(x) // a.batch):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            loss = F.cross_entropy(model(shift(x[idx], g)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    acc = gc.metrics.classifier_accuracy(model.eval(), xt, yt)
    figures = {"test_accuracy": acc, "train_seconds": seconds, "epochs": a.epochs, "batch": a.batch, "lr": a.lr}
    print(figures)
    if a.out:
        gc.save_checkpoint(model, a.out, meta={"config": model.config, **figures,
                                               "command": " ".join(["benchmarks/hw2_train_classifier.py", *sys.argv[1:]])})
        print("wrote", a.out)


if __name__ == "__main__":
    main()
