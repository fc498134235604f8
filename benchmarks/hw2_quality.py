"""HW2 quality gates (issue #13), measured on the solution with the shipped checkpoints; prints every figure.

    .venv/bin/python benchmarks/hw2_quality.py                 # the full run (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/hw2_quality.py --digits 50 --samples 100    # a quick look

Gates:
  * inpainting 500 test digits: the shipped classifier recognises RePaint's completions at >= 90 % with
    the centre box and >= 75 % with the (right) half missing; the GAN's figures beside them; masked-region
    MSE beats mean fill by >= 2x for both models;
  * MNIST-FID (Frechet distance in the classifier's 128-d feature space, against test digits) of
    unconditional DDPM samples, DDIM at 10/25/50/100 steps, and of the GAN's completions;
  * DDPM sampling <= 50 ms per image per 100 steps on 2 cores (images/s reported);
  * the whole benchmark within 20 minutes on 2 cores.
Sampling settings are printed with the figures (RePaint: jump_length 10, n_resample --resample).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import genai_course as gc
from genai_course.grading import reference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--digits", type=int, default=500, help="test digits to inpaint per mask")
    p.add_argument("--samples", type=int, default=1000, help="unconditional samples per sampler for the FID")
    p.add_argument("--resample", type=int, default=3, help="RePaint's n_resample")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the figures here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    start_all = time.perf_counter()
    ref = reference("hw2")
    classifier = gc.models.load_digit_classifier()
    unet, meta = gc.models.load_time_unet()
    sched = ref.DiffusionSchedule(ref.cosine_beta_schedule(meta["T"]))
    G = ref.InpaintGenerator()
    state, _ = gc.load_checkpoint(gc.models.unet.DEFAULT_CHECKPOINT.with_name("hw2_gan.safetensors"))
    G.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("G.")})
    G.eval()
    train_x, _ = gc.data.load_mnist32("train")
    test_x, test_y = gc.data.load_mnist32("test")
    mean_image = train_x.mean(0, keepdim=True)
    real_feats = gc.metrics.classifier_features(classifier, test_x[5000:])  # the FID's reference: 5,000 test digits
    fig: dict = {"settings": {"digits": a.digits, "samples": a.samples, "T": sched.T, "repaint": {"jump_length": 10,
                              "n_resample": a.resample}, "threads": a.threads, "fid_reference": "test digits 5000-9999"}}
    print(f"settings: {fig['settings']}")

    def noise(seed):
        gen = torch.Generator().manual_seed(seed)
        return lambda shape: torch.randn(shape, generator=gen)

    def batched(fn, n, seed):
        return torch.cat([fn(min(a.batch, n - i), seed + i) for i in range(0, n, a.batch)])

    x, y = test_x[:a.digits], test_y[:a.digits]
    fig["real_digits_accuracy"] = gc.metrics.classifier_accuracy(classifier, x, y)
    print(f"classifier on the {a.digits} untouched test digits: {fig['real_digits_accuracy']:.3f}")
    inpainted = {}
    for kind in ("center", "right"):
        m = gc.masks.make_masks(kind, a.digits)
        hole = 1 - m
        start = time.perf_counter()
        with torch.no_grad():
            outs = {"mean fill": ref.compose(mean_image.expand_as(x), x, m),
                    "GAN": ref.compose(G(x, m), x, m)}
        outs["diffusion (RePaint)"] = torch.cat([
            ref.repaint(sched, unet, x[i:i + a.batch], m[i:i + a.batch], noise(100 + i), jump_length=10, n_resample=a.resample)
            for i in range(0, a.digits, a.batch)])
        seconds = time.perf_counter() - start
        mse_mean = float((hole * (outs["mean fill"] - x) ** 2).sum() / hole.sum())
        for name, out in outs.items():
            mse = float((hole * (out - x) ** 2).sum() / hole.sum())
            row = {"accuracy": gc.metrics.classifier_accuracy(classifier, out, y), "hole_mse": mse,
                   "mean_fill_mse_over_mse": mse_mean / mse}
            fig[f"inpaint_{kind}_{name}"] = row
            print(f"{kind:6s} {name:20s} accuracy {row['accuracy']:.3f}  hole MSE {mse:.4f}  "
                  f"(mean fill / this = {row['mean_fill_mse_over_mse']:.2f}x)")
        inpainted[kind] = outs
        print(f"  ({seconds:.0f} s for this mask, RePaint included)")
    for kind, outs in inpainted.items():
        for name in ("GAN", "diffusion (RePaint)"):
            fid = gc.metrics.frechet_distance(gc.metrics.classifier_features(classifier, outs[name]), real_feats)
            fig[f"fid_inpaint_{kind}_{name}"] = fid
            print(f"MNIST-FID of {name} completions, {kind} mask: {fid:.2f}")
    fig["fid_real_train_digits"] = gc.metrics.frechet_distance(
        gc.metrics.classifier_features(classifier, train_x[:a.samples]), real_feats)
    print(f"MNIST-FID of {a.samples} real training digits (the floor): {fig['fid_real_train_digits']:.2f}")

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        fid = gc.metrics.frechet_distance(gc.metrics.classifier_features(classifier, out), real_feats)
        fig[f"fid_{name}"] = fid
        fig[f"images_per_second_{name}"] = a.samples / seconds
        print(f"{name:10s} MNIST-FID {fid:7.2f}   {a.samples / seconds:7.1f} images/s")
        return seconds

    ddpm_s = timed("ddpm", lambda: batched(lambda n, s: ref.p_sample_loop(sched, unet, (n, 1, 32, 32), noise(s)), a.samples, 0))
    fig["ddpm_ms_per_image_per_100_steps"] = 1000 * ddpm_s / a.samples / sched.T * 100
    print(f"DDPM: {fig['ddpm_ms_per_image_per_100_steps']:.1f} ms per image per 100 steps (batch {a.batch}, "
          f"{a.threads} threads; gate <= 50)")
    for steps in (10, 25, 50, 100):
        timed(f"ddim_{steps}", lambda: batched(lambda n, s: ref.ddim_sample(sched, unet, (n, 1, 32, 32), steps, 0.0, noise(s)),
                                              a.samples, 0))
    fig["total_seconds"] = time.perf_counter() - start_all
    print(f"total {fig['total_seconds'] / 60:.1f} min (gate <= 20)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fig, f, indent=2)


if __name__ == "__main__":
    main()
