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
