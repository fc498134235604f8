"""Train the attribute judge HW4 uses to score generated images against their prompts; write the checkpoint.

    .venv/bin/python benchmarks/hw4_train_judge.py --out data/checkpoints/hw4_judge.safetensors

``genai_course.models.AttributeJudge`` (digit, colour and position heads), the sum of the three
cross-entropies, AdamW with a one-cycle schedule. The training images are the digits of the
``captioned_digits("train")`` split (MNIST ``train``) composed afresh for every batch with
``genai_course.data.captions.compose`` -- new jitter, and a colour and a quadrant drawn uniformly from
ALL 16 pairs, the held-out combinations included. The judge must score prompts of the ``heldout``
split too; trained on the generator's 140 combinations only, its digit head learns their correlations
(which digits never come in which colour where) and reads held-out canvases markedly worse (91 % against
98 % on ``val`` in a trial run). No ``val`` or ``heldout`` digit image (MNIST ``val`` / ``test``) is
seen in training. Generated images are imperfect, so the canvases are also augmented: a random shift of
up to ``--max-shift`` pixels (filled with black, like the canvas), and for some images a blur and
Gaussian pixel noise. Prints per-attribute and all-three accuracies on the ``val`` split (training
combinations, unseen digit images) and the ``heldout`` split (the 20 combinations the generator never
sees); the checkpoint's metadata records them with the command and time.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import genai_course as gc
from genai_course.data.captions import COLOUR_NAMES, MNIST_SOURCE, POSITIONS, captioned_digits, compose
from genai_course.data.mnist import load_mnist

HEADS = ("digit", "colour", "position")


def shift(x: torch.Tensor, g: torch.Generator, max_shift: int) -> torch.Tensor:
    """Shift each image by its own (dy, dx) in [-max_shift, max_shift], filling with black."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m))
    d = torch.randint(-m, m + 1, (b, 2), generator=g)
    rows = (torch.arange(h)[None, :] + m - d[:, :1])  # (B, H): source row of each output row
    cols = (torch.arange(w)[None, :] + m - d[:, 1:])
    return padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def degrade(x: torch.Tensor, g: torch.Generator, p_blur: float = 0.3, p_noise: float = 0.5,
            max_sigma: float = 0.08) -> torch.Tensor:
    """Blur some images (a random blend with a 3x3 binomial blur) and add Gaussian noise to some."""
    b = x.shape[0]
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    blurred = F.conv2d(x, k, padding=1, groups=x.shape[1])
    amount = torch.rand(b, 1, 1, 1, generator=g) * (torch.rand(b, 1, 1, 1, generator=g) < p_blur)
    x = x + amount * (blurred - x)
    sigma = max_sigma * torch.rand(b, 1, 1, 1, generator=g) * (torch.rand(b, 1, 1, 1, generator=g) < p_noise)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)


def evaluate(model: gc.models.AttributeJudge, data: dict) -> dict[str, float]:
    return model.score(data["images"], data["digit"], data["colour"], data["position"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the training split (may be fractional)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long (the schedule follows "
                                                                "whichever of --epochs and --minutes ends first)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=None, help="training digits (default: all 50,000 of MNIST train)")
    p.add_argument("--max-shift", type=int, default=1, help="extra shift on top of compose's +-2 jitter")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu (the shipped run), cuda, or auto")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = gc.seed_everything(a.seed)
    device = gc.get_device() if a.device == "auto" else torch.device(a.device)
    # the digit images of captioned_digits("train"): (N, 1, 28, 28) in [0, 1); compose shrinks them per batch
    mnist_x, mnist_y = load_mnist(MNIST_SOURCE["train"])
    if a.n:
        keep = torch.randperm(len(mnist_y), generator=g)[:a.n]
        mnist_x, mnist_y = mnist_x[keep], mnist_y[keep]
    val, heldout = captioned_digits("val"), captioned_digits("heldout")
    model = gc.models.AttributeJudge(width=a.width).to(device)
    n_params = sum(q.numel() for q in model.parameters())
    steps = max(1, math.ceil(a.epochs * len(mnist_y) / a.batch_size))
    budget = a.minutes * 60 if a.minutes else float("inf")
    print(f"AttributeJudge {model.config}, {n_params:,} parameters; {len(mnist_y):,} training digits, batch "
          f"{a.batch_size}, lr {a.lr}, up to {steps:,} steps" + (f" or {a.minutes} min" if a.minutes else "")
          + f" on {device} ({a.threads} threads)")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    start = time.perf_counter()
    step, perm, pos = 0, torch.randperm(len(mnist_y), generator=g), 0
    bar = tqdm(total=steps, desc="judge", unit="batch")
    while step < steps and (elapsed := time.perf_counter() - start) < budget:
        # one-cycle (warm-up then cosine) over whichever budget runs out first
        frac = max(step / steps, elapsed / budget)
        warm = 0.1
        lr = a.lr * (frac / warm if frac < warm else 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm))))
        for group in opt.param_groups:
            group["lr"] = max(lr, a.lr * 1e-3)
        if pos + a.batch_size > len(mnist_y):
            perm, pos = torch.randperm(len(mnist_y), generator=g), 0
        idx = perm[pos:pos + a.batch_size]
        pos += a.batch_size
        labels = {"digit": mnist_y[idx], "colour": torch.randint(0, len(COLOUR_NAMES), (len(idx),), generator=g),
                  "position": torch.randint(0, len(POSITIONS), (len(idx),), generator=g)}
        xb = compose(mnist_x[idx], labels["digit"], labels["colour"], labels["position"], generator=g)
        xb = degrade(shift(xb, g, a.max_shift), g).to(device)
        out = model(xb)
        loss = sum(F.cross_entropy(out[k], labels[k].to(device)) for k in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    figures = {"val": evaluate(model, val), "heldout": evaluate(model, heldout), "train_seconds": round(seconds, 1),
               "steps": step, "images_seen": step * a.batch_size, "seconds_per_batch": round(seconds / max(step, 1), 4),
               "parameters": n_params, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed,
               "train_digits": len(mnist_y), "max_shift": a.max_shift, "device": str(device), "threads": a.threads}
    for split in ("val", "heldout"):
        print(f"{split:8s} " + "  ".join(f"{k} {v:.2%}" for k, v in figures[split].items()))
    print({k: v for k, v in figures.items() if k not in ("val", "heldout")})
    if a.out:
        gc.save_checkpoint(model, a.out, meta={"model": "AttributeJudge", "config": model.config, **figures,
                                               "command": " ".join(["benchmarks/hw4_train_judge.py", *sys.argv[1:]])})
        print("wrote", a.out)


if __name__ == "__main__":
    main()
