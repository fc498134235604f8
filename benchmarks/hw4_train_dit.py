"""Train HW4's DiT with the solution notebook's own code (``reference("hw4")``: DiT, train_dit, encode_prompts,
sample, judge_accuracy) and print its quality gates: the judge's all-attributes accuracy on generations from
training and held-out combinations at several guidance scales, and the sampling time per image.

    # the shipped checkpoint
    .venv/bin/python benchmarks/hw4_train_dit.py --minutes 50 --batch 128 --lr 1e-3 --out data/checkpoints/hw4_dit.safetensors
    # the student-length gate: the notebook's defaults (batch 64, lr 2e-3) for 10 minutes
    .venv/bin/python benchmarks/hw4_train_dit.py --minutes 10
    # gates of an existing checkpoint only
    .venv/bin/python benchmarks/hw4_train_dit.py --eval data/checkpoints/hw4_dit.safetensors

Training stops after ``--minutes`` of wall time or ``--max-steps`` steps, whichever comes first; the checkpoint
holds the EMA weights in float16 (evaluated after the round trip, as the notebook loads them) and a metadata
record of the steps, time, recipe and the figures printed here.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import genai_course as gc  # noqa: E402
from genai_course.data import captions as C  # noqa: E402
from genai_course.grading import reference  # noqa: E402


def prepare(ref, vae, text_model, tokenizer, device, n=None):
    data = C.captioned_digits("train", n=n)
    t0 = time.time()
    with torch.no_grad():
        latents = torch.cat([vae.latents(data["images"][i:i + 500].to(device)) for i in range(0, len(data["images"]), 500)])
    captions, caption_idx = ref.caption_table(data["captions"])
    hidden, mask = ref.encode_prompts(captions, tokenizer, text_model)
    print(f"prepared {len(latents):,} latents and {len(captions)} captions in {time.time() - t0:.0f} s", flush=True)
    return latents, caption_idx.to(device), hidden.to(device), mask.to(device)


def evaluate(ref, model, vae, judge, encode, scales, per_seen, per_held, steps):
    figures = {}
    for split, per in (("seen", per_seen), ("heldout", per_held)):
        combos = C.all_combinations("train" if split == "seen" else "heldout")
        for s in scales:
            t0 = time.time()
            sc = ref.judge_accuracy(model, vae, judge, encode, combos, per, s, steps=steps, seed=0)
            ms = (time.time() - t0) / (len(combos) * per) * 1000
            figures[f"{split}_s{s:g}"] = round(sc["all"], 4)
            print(f"{split:8s} s={s:<4g} all {100 * sc['all']:5.1f} %  (digit {100 * sc['digit']:5.1f}, colour "
                  f"{100 * sc['colour']:5.1f}, position {100 * sc['position']:5.1f})  {ms:5.1f} ms/image "
                  f"[{len(combos) * per} images]", flush=True)
            figures.setdefault("ms_per_image", []).append(round(ms, 1))
    return figures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--max-steps", type=int, default=10**9)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="where to save the EMA weights (safetensors)")
    p.add_argument("--eval", default="", help="evaluate this checkpoint instead of training")
    p.add_argument("--init", default="", help="continue training from this checkpoint's (EMA) weights; the saved "
                   "metadata adds up the steps and seconds of both runs")
    p.add_argument("--scales", default="0,1,3,5")
    p.add_argument("--per-seen", type=int, default=2, help="images per training combination (140 combinations)")
    p.add_argument("--per-heldout", type=int, default=10, help="images per held-out combination (20 combinations)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = gc.get_device()
    ref = reference("hw4")
    vae, _ = gc.models.load_latent_vae(device=device)
    judge, _ = gc.models.load_attribute_judge(device=device)
    text_model, tokenizer = gc.models.load_minilm(device=device)
    encode = partial(ref.encode_prompts, tokenizer=tokenizer, text_model=text_model)
    model = ref.DiT(**ref.DIT_CONFIG)
    meta = {}
    if args.eval:
        _, meta = gc.load_checkpoint(args.eval, model)
        model = model.to(device).eval()
        print(f"{args.eval}: {meta.get('steps')} steps, {meta.get('train_seconds', 0) / 60:.1f} min")
    else:
        latents, caption_idx, hidden, mask = prepare(ref, vae, text_model, tokenizer, device)
        abar = ref.cosine_alphas_cumprod(1000).to(device)
        gc.seed_everything(args.seed)
        before = {}
        if args.init:
            _, before = gc.load_checkpoint(args.init, model)
            print(f"continuing from {args.init}: {before['steps']:,} steps, {before['train_seconds'] / 60:.1f} min")
        model = model.to(device)
        print(f"DiT {sum(q.numel() for q in model.parameters()):,} parameters on {device}, load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        t0 = time.time()
        ema, losses = ref.train_dit(model, latents, caption_idx, hidden, mask, abar, minutes=args.minutes,
                                    max_steps=args.max_steps, batch_size=args.batch, lr=args.lr, seed=args.seed)
        seconds = time.time() - t0
        k = max(1, len(losses) // 10)
        print(f"trained {len(losses):,} steps in {seconds:.0f} s ({seconds / len(losses):.3f} s/step); loss by tenths: "
              + " ".join(f"{sum(losses[i:i + k]) / len(losses[i:i + k]):.3f}" for i in range(0, len(losses), k)),
              flush=True)
        # Evaluate what ships: the EMA weights rounded to float16.
        model = ref.DiT(**ref.DIT_CONFIG)
        model.load_state_dict({n: v.half().float() for n, v in ema.state_dict().items()})
        model = model.to(device).eval()
        command = "python benchmarks/hw4_train_dit.py " + shlex.join(sys.argv[1:])
        meta = {"model": "DiT", "config": ref.DIT_CONFIG, "steps": len(losses) + before.get("steps", 0),
                "train_seconds": round(seconds + before.get("train_seconds", 0), 1), "batch_size": args.batch,
                "lr": args.lr, "seed": args.seed, "final_loss": round(sum(losses[-k:]) / k, 4), "device": str(device),
                "command": (before["command"] + " && " if before else "") + command,
                "runs": before.get("runs", [before.get("steps")] if before else []) + [len(losses)]}
    scales = [float(s) for s in args.scales.split(",")]
    figures = evaluate(ref, model, vae, judge, encode, scales, args.per_seen, args.per_heldout, args.steps)
    top = max(scales)
    print(f"gates at s={top:g}: seen {100 * figures[f'seen_s{top:g}']:.1f} %, held out "
          f"{100 * figures[f'heldout_s{top:g}']:.1f} %, lift over s=0 (seen) "
          f"{100 * (figures[f'seen_s{top:g}'] - figures['seen_s0']):.1f} points; load {os.getloadavg()[0]:.1f}")
    if args.out and not args.eval:
        meta["figures"] = figures
        state = {n: v.detach().cpu().half().contiguous() for n, v in model.state_dict().items()}
        gc.save_checkpoint(state, args.out, meta)
        print("saved", args.out, f"{Path(args.out).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
