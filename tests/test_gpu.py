"""On a CUDA machine: the shared helpers and the homework solutions run on the GPU and agree with the CPU.

CI has no GPU, so these are skipped there (the skip says so); run them where one is present:
``python -m pytest tests/test_gpu.py``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import genai_course as gc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
CUDA = torch.device("cuda")


def test_get_device_picks_cuda_and_batches_live_there():
    assert gc.get_device() == CUDA
    batches = gc.training.TensorBatches(torch.randn(10, 3), torch.arange(10), 4, shuffle=True, device=CUDA)
    for x, y in batches:
        assert x.is_cuda and y.is_cuda


def test_fit_and_train_lm_follow_the_model_to_the_gpu():
    gc.seed_everything(0)
    x = torch.randn(256, 2)
    y = (x.sum(dim=1) > 0).long()
    model = nn.Linear(2, 2).to(CUDA)
    hist = gc.training.fit(model, gc.training.TensorBatches(x, y, 32, shuffle=True), torch.optim.SGD(model.parameters(), lr=0.5),
                           nn.functional.cross_entropy, epochs=5)
    assert gc.model_device(model).type == "cuda" and hist.train_loss[-1] < hist.train_loss[0]

    def loss(logits, t):
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), t.reshape(-1))

    ids = torch.arange(12).repeat(50)  # stays on the CPU
    lm = nn.Embedding(12, 12).to(CUDA)
    gc.training.train_lm(lm, ids, loss, context=16, batch_size=8, lr=0.1, max_steps=150, warmup=10, weight_decay=0.0)
    assert gc.training.lm_eval_loss(lm, ids, 16, loss, max_windows=5) < 0.1


def test_hw0_solution_models_train_on_the_gpu():
    from genai_course.grading import reference

    ref = reference("hw0")
    gc.seed_everything(0)
    x = torch.randn(512, 1, 28, 28)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    for model in (ref.MLPClassifier(), ref.CNNClassifier()):
        model.to(CUDA)
        loader = gc.training.TensorBatches(x, y, 64, shuffle=True, device=CUDA)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = [ref.train_one_epoch(model, loader, opt, nn.functional.cross_entropy) for _ in range(3)]
        assert losses[-1] < losses[0]
        assert set(ref.evaluate(model, loader, nn.functional.cross_entropy)) == {"loss", "accuracy"}
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    for model in (ref.BagOfEmbeddings(20, 8, 2), ref.TextCNN(20, 8, 2), ref.GRUClassifier(20, 8, 8, 2)):
        model.eval()
        cpu = model(ids)
        model.to(CUDA)
        gpu, gpu_padded = model(ids.to(CUDA)), model(padded.to(CUDA))
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(gpu_padded, gpu, atol=1e-4, rtol=1e-4)


def test_hw1_solution_runs_on_the_gpu():
    from genai_course.grading import reference

    ref = reference("hw1")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 300, 16, generator=g).to(CUDA) for _ in range(3))
    dense = ref.scaled_dot_product_attention(q, k, v, ref.sliding_window_mask(300, 32).to(CUDA))
    torch.testing.assert_close(ref.banded_attention(q, k, v, 32), dense, atol=1e-4, rtol=1e-4)

    cfg = ref.LMConfig(vocab_size=23, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, window=4, context=32)
    torch.manual_seed(0)
    model = ref.TransformerLM(cfg).eval()
    idx = torch.randint(0, 23, (2, 12), generator=g)
    with torch.no_grad():
        cpu_logits = model(idx)
        model.to(CUDA)
        torch.testing.assert_close(model(idx.to(CUDA)).cpu(), cpu_logits, atol=1e-4, rtol=1e-4)
    cache = model.new_cache(2)
    assert all(c.k.is_cuda and c.v.is_cuda and c.pos.is_cuda for c in cache)
    prompt = idx[:, :3].to(CUDA)
    greedy = ref.generate(model, prompt, 10, temperature=0)
    ref_ids = prompt
    with torch.no_grad():
        for _ in range(10):
            ref_ids = torch.cat([ref_ids, model(ref_ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, ref_ids)
    sample = ref.generate(model, prompt, 10, temperature=1.0, top_p=0.9, generator=torch.Generator(device=CUDA).manual_seed(0))
    assert sample.is_cuda and sample.shape == (2, 13)


def _cpu_noise(seed, device):
    """Noise drawn on the CPU and moved to ``device``: the same numbers on both devices."""
    gen = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(shape, generator=gen).to(device)


def test_hw2_samplers_and_gan_step_run_on_the_gpu():
    from genai_course.grading import reference
    from genai_course.models.unet import TimeUNet

    ref = reference("hw2")
    torch.manual_seed(0)
    unet = TimeUNet(base=16, time_dim=32).eval()
    image = torch.rand(2, 1, 32, 32) * 2 - 1
    mask = torch.ones(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 0
    out = {}
    for device in ("cpu", CUDA):
        sched = ref.DiffusionSchedule(ref.cosine_beta_schedule(20)).to(device)
        model = unet.to(device)
        ddpm = ref.p_sample_loop(sched, model, (2, 1, 32, 32), _cpu_noise(0, device))
        ddim = ref.ddim_sample(sched, model, (2, 1, 32, 32), 5, 0.5, _cpu_noise(1, device))
        paint = ref.repaint(sched, model, image.to(device), mask.to(device), _cpu_noise(2, device), jump_length=5, n_resample=2)
        assert ddpm.device.type == ddim.device.type == paint.device.type == torch.device(device).type
        out[str(device)] = [x.cpu() for x in (ddpm, ddim, paint)]
    for cpu, gpu in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=1e-3)
    assert torch.equal(out["cuda"][2] * mask, image * mask), "RePaint must keep the known pixels exactly"

    G, D = ref.InpaintGenerator(width=8).to(CUDA), ref.Discriminator(width=8).to(CUDA)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (G, D))
    losses = ref.gan_train_step(G, D, opt_g, opt_d, image.to(CUDA), mask.to(CUDA))
    assert set(losses) == {"d_loss", "g_loss"} and all(isinstance(v, float) for v in losses.values())
    assert all(p.grad is None or p.grad.is_cuda for p in [*G.parameters(), *D.parameters()])


def test_hw3_lora_trains_and_merges_on_the_gpu():
    from genai_course.grading import reference
    from genai_course.models.llama import tiny_llama

    ref = reference("hw3")
    model = tiny_llama(seed=0)
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    ref.inject_lora(model, ("q_proj", "v_proj", "up_proj"), r=4, alpha=8.0)
    ref.mark_only_lora_as_trainable(model)
    with torch.no_grad():  # a non-zero update, so that merging changes the base weights
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    model.eval()
    with torch.no_grad():
        cpu_logits = model(ids).logits
    model.train().to(CUDA)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {k: v.clone() for k, v in ref.lora_state_dict(model).items()}
    assert before and all(v.is_cuda for v in before.values())
    loss = model(ids.to(CUDA), labels=ids.to(CUDA)).loss
    loss.backward()
    opt.step()
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n), "only A and B get gradients"
    after = ref.lora_state_dict(model)
    assert any(not torch.equal(after[k], before[k]) for k in before)
    ref.load_lora_state_dict(model, {k: v.cpu() for k, v in before.items()})  # a state saved on the CPU loads onto the GPU
    model.eval()  # merges
    with torch.no_grad():
        torch.testing.assert_close(model(ids.to(CUDA)).logits.cpu(), cpu_logits, atol=1e-4, rtol=1e-4)
    model.train()  # unmerges: back to the adapter weights exactly as loaded
    for k, v in ref.lora_state_dict(model).items():
        assert v.is_cuda and torch.equal(v.cpu(), before[k].cpu())


def test_hw4_dit_trains_and_samples_on_the_gpu():
    """HW4: a few training steps of the solution's DiT run on the GPU, and its sampler gives the CPU's images under
    the same weights and the same (CPU-drawn) starting noise."""
    from genai_course.grading import reference

    ref = reference("hw4")
    gc.seed_everything(0)
    config = {**ref.DIT_CONFIG, "dim": 32, "depth": 2, "n_heads": 2, "context_dim": 8}
    model = ref.DiT(**config).to(CUDA)
    latents = torch.randn(64, 4, 8, 8, device=CUDA)
    hidden, mask = torch.randn(5, 3, 8, device=CUDA), torch.ones(5, 3, dtype=torch.bool, device=CUDA)
    caption_idx = torch.randint(0, 5, (64,), device=CUDA)
    abar = ref.cosine_alphas_cumprod(1000).to(CUDA)
    ema, losses = ref.train_dit(model, latents, caption_idx, hidden, mask, abar, minutes=5, max_steps=30, batch_size=16)
    assert len(losses) == 30 and next(ema.parameters()).is_cuda
    with torch.no_grad():  # non-zero output layers, so the sampler's arithmetic matters
        for p in ema.parameters():
            p.add_(0.05 * torch.randn_like(p))

    class Decoder(nn.Module):
        def decode_latents(self, z):
            return torch.tanh(z)

    def encode(prompts):
        g = torch.Generator().manual_seed(len(prompts))
        return torch.randn(len(prompts), 3, 8, generator=g), torch.ones(len(prompts), 3, dtype=torch.bool)

    on_gpu = ref.sample(ema, Decoder(), encode, ["a", "b", "c"], steps=10, guidance_scale=4.0,
                        generator=torch.Generator().manual_seed(0))
    on_cpu = ref.sample(ema.cpu(), Decoder(), encode, ["a", "b", "c"], steps=10, guidance_scale=4.0,
                        generator=torch.Generator().manual_seed(0))
    assert on_gpu.is_cuda and torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-3)
