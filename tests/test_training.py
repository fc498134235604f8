from __future__ import annotations

import torch
from torch import nn

import genai_course as gc
from genai_course.training import evaluate, fit


def test_fit_learns_a_separable_problem():
    g = gc.seed_everything(0)
    x = torch.randn(256, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Linear(2, 2)
    acc = lambda logits, t: (logits.argmax(-1) == t).float().mean().item()  # noqa: E731
    hist = fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), nn.functional.cross_entropy,
               epochs=5, val_loader=loader, metric=acc)
    assert len(hist.train_loss) == len(hist.val_loss) == len(hist.val_metric) == 5
    assert hist.train_loss[-1] < hist.train_loss[0] * 0.6
    assert hist.val_metric[-1] > 0.95
    assert model.training, "fit leaves the model in train mode"
    model.eval()
    evaluate(model, loader, nn.functional.cross_entropy)
    assert not model.training, "evaluate restores the mode it found"


def test_fit_max_steps_caps_optimizer_steps():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    opt.register_step_post_hook(lambda *a: steps.append(1))
    data = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))] * 10
    fit(model, data, opt, nn.functional.cross_entropy, epochs=2, max_steps=3)
    assert len(steps) == 6


def test_lm_batch_shapes_and_targets():
    ids = torch.arange(100)
    x, y = gc.training.lm_batch(ids, context=8, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and torch.equal(y, x + 1)
    import pytest
    with pytest.raises(ValueError, match="need more than"):
        gc.training.lm_batch(torch.arange(5), 8, 2)


class _Bigram(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.table = nn.Embedding(v, v)

    def forward(self, idx):
        return self.table(idx)


def _lm_loss(logits, y):
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def test_train_lm_learns_a_deterministic_sequence():
    gc.seed_everything(0)
    ids = torch.arange(12).repeat(50)  # next id is always (id + 1) % 12
    model = _Bigram(12)
    before = gc.training.lm_eval_loss(model, ids, 16, _lm_loss)
    hist = gc.training.train_lm(model, ids, _lm_loss, context=16, batch_size=8, lr=0.1, max_steps=150, warmup=10,
                                weight_decay=0.0, log_every=10)
    after = gc.training.lm_eval_loss(model, ids, 16, _lm_loss, max_windows=5)
    assert len(hist.steps) == 15 and hist.tokens == 150 * 8 * 16 and hist.seconds > 0
    assert before > 2.0 and after < 0.1
    assert model.training is True


def test_tensor_batches_cover_every_row_once_per_pass():
    import pytest

    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    plain = gc.training.TensorBatches(x, y, batch_size=4)
    assert len(plain) == 3
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = gc.training.TensorBatches(x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    passes = [torch.cat([b[1] for b in shuffled]).tolist() for _ in range(3)]
    assert all(sorted(p) == list(range(10)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1, "each pass draws a new order"
    for xb, yb in shuffled:
        assert torch.equal(xb[:, 0].long(), yb), "x and y rows stay aligned"
    again = gc.training.TensorBatches(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert torch.cat([b[1] for b in again]).tolist() == passes[0], "same seed, same order"
    with pytest.raises(ValueError, match="10 rows but y has 9"):
        gc.training.TensorBatches(x, y[:9], 4)
    with pytest.raises(ValueError, match="batch_size"):
        gc.training.TensorBatches(x, y, 0)


def test_tensor_batches_move_data_once_and_follow_the_global_seed():
    x, y = torch.randn(6, 2), torch.arange(6)
    b = gc.training.TensorBatches(x, y, 3, device="meta")
    assert b.x.device.type == "meta" and b.y.device.type == "meta"
    orders = []
    for _ in range(2):
        gc.seed_everything(3)
        orders.append(torch.cat([yb for _, yb in gc.training.TensorBatches(x, y, 3, shuffle=True)]).tolist())
    assert orders[0] == orders[1]


def test_model_device_and_defaults_follow_the_model():
    assert gc.model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert gc.model_device(nn.ReLU()) == torch.device("cpu")
    only_buffer = nn.Module()
    only_buffer.register_buffer("b", torch.zeros(1, device="meta"))
    assert gc.model_device(only_buffer).type == "meta"
    assert gc.model_device(nn.Linear(2, 2, device="meta")).type == "meta"


def test_step_log_records_every_step_around_a_foreign_loop():
    """StepLog wraps a loop it does not own (like a student's train_one_epoch): one loss per batch,
    validation every `every` steps and on demand at the end, a bar that advances per batch."""
    def foreign_epoch(model, loader, opt, loss_fn):  # the shape of a homework's train_one_epoch
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

    torch.manual_seed(0)
    x = torch.randn(50, 2)
    y = (x.sum(1) > 0).long()
    loader = gc.training.TensorBatches(x, y, 8)  # 7 batches
    model = nn.Linear(2, 2)
    calls = []
    log = gc.training.StepLog(nn.functional.cross_entropy, validate=lambda: calls.append(1) or {"acc": 0.5},
                              every=3, total=14, desc="test")
    for _ in range(2):
        foreign_epoch(model, log.batches(loader), torch.optim.SGD(model.parameters(), lr=0.1), log.loss)
        log.validate_now()
    log.close()
    assert log.steps == list(range(1, 15)) and len(log.train_loss) == 14
    assert log.val_steps == [3, 6, 7, 9, 12, 14] and log.val["acc"] == [0.5] * 6 and len(calls) == 6
    assert log._bar.n == 14


def test_if_implemented_skips_stubs_with_a_note(capsys):
    class Stub(nn.Module):
        def __init__(self):
            super().__init__()
            raise NotImplementedError()

    class HalfStub(nn.Linear):
        def forward(self, x):
            raise NotImplementedError()

    assert gc.training.if_implemented("Stub", Stub) is None
    assert gc.training.if_implemented("HalfStub", lambda: HalfStub(2, 2), example=torch.zeros(1, 2)) is None
    assert "Stub: not implemented" in capsys.readouterr().out
    assert isinstance(gc.training.if_implemented("Linear", lambda: nn.Linear(2, 2), example=torch.zeros(1, 2)), nn.Linear)
