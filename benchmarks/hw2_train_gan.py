"""Train HW2's inpainting GAN (the solution notebook's ``InpaintGenerator``, ``Discriminator`` and
``gan_train_step``) on random masks of every kind; write the checkpoint.

    .venv/bin/python benchmarks/hw2_train_gan.py --minutes 12 --out data/checkpoints/hw2_gan.safetensors

Adam (lr 2e-4, betas 0.5/0.999, DCGAN's settings), batch 64, lambda_rec 100, masks from
``gc.masks.make_masks("mixed", ...)``. Both networks are saved in one file (keys ``G.*`` and ``D.*``).
Prints the losses and the masked-region MSE on 1,000 validation digits per mask kind.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import genai_course as gc
from genai_course.grading import reference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=12.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lambda-rec", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ref = reference("hw2")
    g = gc.seed_everything(0)
    x, _ = gc.data.load_mnist32("train")
    G, D = ref.InpaintGenerator(), ref.Discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=a.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=a.lr, betas=(0.5, 0.999))
    print(f"G {sum(q.numel() for q in G.parameters()):,} / D {sum(q.numel() for q in D.parameters()):,} parameters; "
          f"batch {a.batch}, lr {a.lr}, lambda_rec {a.lambda_rec}, {a.minutes} min")
    history, step, start = {"d_loss": [], "g_loss": []}, 0, time.perf_counter()
    G.train(), D.train()
    bar = tqdm(desc="GAN", unit="step")
    while time.perf_counter() - start < a.minutes * 60:
        idx = torch.randint(0, len(x), (a.batch,), generator=g)
        mask = gc.masks.make_masks("mixed", a.batch, generator=g)
        losses = ref.gan_train_step(G, D, opt_g, opt_d, x[idx], mask, lambda_rec=a.lambda_rec)
        step += 1
        if step % 20 == 0:
            for k, v in losses.items():
                history[k].append(v)
        bar.update()
        bar.set_postfix(losses)
    bar.close()
    seconds = time.perf_counter() - start
    G.eval()
    vx, _ = gc.data.load_mnist32("val")
    vx = vx[:1000]
    mean_image = x.mean(0, keepdim=True)
    figures = {"train_seconds": seconds, "steps": step, "batch": a.batch, "lr": a.lr, "lambda_rec": a.lambda_rec,
               "history_every": 20}
    with torch.no_grad():
        for kind in gc.masks.MASK_KINDS:
            m = gc.masks.make_masks(kind, len(vx), generator=torch.Generator().manual_seed(5))
            hole = 1 - m
            for name, pred in (("gan", G(vx, m)), ("mean_fill", mean_image.expand_as(vx))):
                figures[f"hole_mse_{kind}_{name}"] = float((hole * (pred - vx) ** 2).sum() / hole.sum())
    print(figures)
    if a.out:
        state = {**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()}}
        gc.save_checkpoint(state, a.out, meta={**figures, "history": history,
                                               "command": " ".join(["benchmarks/hw2_train_gan.py", *sys.argv[1:]])})
        print("wrote", a.out)


if __name__ == "__main__":
    main()
