"""Train HW2's noise-prediction U-Net (``genai_course.models.TimeUNet``) on MNIST 32x32; write the checkpoint.

    .venv/bin/python benchmarks/hw2_train_unet.py --minutes 40 --out data/checkpoints/hw2_unet.safetensors

The solution notebook's own ``cosine_beta_schedule``, ``DiffusionSchedule`` and ``p_losses``
(epsilon-prediction MSE, Ho et al., 2020) with T = 200 timesteps; a uniformly random t per image;
AdamW with a short warm-up and a cosine decay over the time budget; an exponential moving average
(EMA) of the weights, which is what gets saved (EMA weights sample markedly better than the raw
ones). Prints throughput, the loss curve and the final loss; the metadata records all of it.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import genai_course as gc
from genai_course.grading import reference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=40.0)
    p.add_argument("--T", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--device", default="cpu", help="cpu (the shipped run), cuda, or auto")
    p.add_argument("--base", type=int, default=32, help="TimeUNet width of the first level")
    p.add_argument("--mults", default="1,2,2", help="TimeUNet channel multipliers, comma-separated")
    p.add_argument("--patch", type=int, default=2, help="TimeUNet pixel folding (2: the network works at 16x16)")
    p.add_argument("--skip", default="add", choices=("cat", "add"))
    p.add_argument("--init", type=Path, default=None,
                   help="continue from this checkpoint (its weights start both the model and the EMA; the "
                        "recorded time, steps and history add up)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ref = reference("hw2")
    g = gc.seed_everything(0)
    device = gc.get_device() if a.device == "auto" else torch.device(a.device)
    x, _ = gc.data.load_mnist32("train")
    sched = ref.DiffusionSchedule(ref.cosine_beta_schedule(a.T)).to(device)
    model = gc.models.TimeUNet(base=a.base, mults=tuple(int(m) for m in a.mults.split(",")), patch=a.patch,
                               skip=a.skip).to(device)
    before = {"train_seconds": 0.0, "steps": 0, "history": {"steps": [], "loss": []}, "command": ""}
    if a.init:  # the architecture is the checkpoint's own (--base/--mults/--patch/--skip are ignored)
        model, before = gc.models.load_time_unet(a.init, device)
        model.train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"TimeUNet {model.config}, {n_params:,} parameters; T={a.T}, batch {a.batch}, lr {a.lr}, "
          f"{a.minutes} min on {device}")
    budget = a.minutes * 60
    start = time.perf_counter()
    history, window, step = {"steps": [], "loss": []}, [], 0
    bar = tqdm(desc="U-Net", unit="step")
    while (elapsed := time.perf_counter() - start) < budget:
        frac = elapsed / budget
        lr = a.lr * min(1.0, step / 200) * 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x), (a.batch,), generator=g)
        x0 = x[idx].to(device)
        t = torch.randint(0, a.T, (a.batch,), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        loss = ref.p_losses(sched, model, x0, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(a.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        step += 1
        window.append(loss.item())
        if step % 100 == 0:
            history["steps"].append(step)
            history["loss"].append(sum(window) / len(window))
            window.clear()
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.1e}")
    bar.close()
    seconds = time.perf_counter() - start
    # Final loss of the EMA weights on a fixed held-out batch set (validation split), same t/noise for all.
    vx, _ = gc.data.load_mnist32("val")
    gv = torch.Generator().manual_seed(1)
    with torch.no_grad():
        losses = []
        for i in range(0, 2000, 500):
            x0 = vx[i:i + 500].to(device)
            t = torch.randint(0, a.T, (len(x0),), generator=gv).to(device)
            losses.append(ref.p_losses(sched, ema, x0, t, torch.randn(x0.shape, generator=gv).to(device)).item())
    history = {"steps": before["history"]["steps"] + [before["steps"] + s for s in history["steps"]],
               "loss": before["history"]["loss"] + history["loss"]}
    step_total = before["steps"] + step
    figures = {"T": a.T, "schedule": "cosine", "train_seconds": before["train_seconds"] + seconds, "steps": step_total,
               "images": step_total * a.batch, "runs": before.get("runs", 1 if a.init else 0) + 1,
               "final_loss": history["loss"][-1] if history["loss"] else float("nan"),
               "val_loss_ema": sum(losses) / len(losses), "parameters": n_params, "batch": a.batch, "lr": a.lr,
               "ema": a.ema, "device": str(device)}
    print({k: v for k, v in figures.items()})
    if a.out:
        gc.save_checkpoint(ema, a.out, meta={"config": model.config, **figures, "history": history,
                                             "command": " then ".join(c for c in (before["command"], " ".join(
                                                 ["benchmarks/hw2_train_unet.py", *sys.argv[1:]])) if c)})
        print("wrote", a.out)


if __name__ == "__main__":
    main()
