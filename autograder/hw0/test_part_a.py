"""HW0 part A (images): accuracy, MLPClassifier, CNNClassifier, train_one_epoch, evaluate, and a
short training gate. Runs in the trusted grader; student code runs only behind `student`."""
import torch
import torch.nn.functional as F

from genai_course.grading import (Checks, Fail, StudentError, expect, expect_close, expect_equal, expect_shape,
                                  expect_type, graded, reference)
from genai_course.grading.weights import expect_loaded, random_state

ref = reference("hw0")


@graded(points=2)
def test_accuracy(student):
    """accuracy: random batches, ties, a perfect batch and an empty batch"""
    g = student.rng()
    checks = Checks()
    cases = {
        "random logits (B=37, C=10)": (torch.randn(37, 10, generator=g), torch.randint(0, 10, (37,), generator=g)),
        "rows with tied maxima": (torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]]), torch.tensor([0, 2, 0])),
        "all correct": (torch.eye(5) * 3, torch.arange(5)),
    }
    for label, (logits, labels) in cases.items():
        with checks.case(label):
            got = student.call("accuracy", logits, labels)
            expect_type(got, float, f"accuracy on {label}", hint="return a Python float: use .item()")
            expect_close(got, ref.accuracy(logits, labels), f"accuracy on {label}", atol=1e-6,
                         hint="ties resolve like torch.argmax: the first maximum wins")
    with checks.case("empty batch"):
        got = student.call("accuracy", torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))
        expect_close(got, 0.0, "accuracy(empty logits (0, 10), empty labels)", atol=0,
                     hint="return 0.0 when there are no examples instead of dividing by zero")
    return checks


def _expect_loaded(got, what):
    expect_loaded(got, what, hint="build exactly the layers the docstring lists (types, shapes, biases)")


def _module_checks(student, cls, configs, input_shape_of, hint):
    checks = Checks()
    g = student.rng()
    for kwargs in configs:
        label = f"{cls}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        x = torch.randn(*input_shape_of(kwargs), generator=g)
        with checks.case(label):
            got = student.probe("module_summary", cls=cls, kwargs=kwargs, x=x)
            expect("absent" not in got, label, got.get("absent", ""))
            expected = getattr(ref, cls)(**kwargs)
            n_classes = kwargs.get("n_classes", 10)
            expect_shape(got["out"], (x.shape[0], n_classes), f"{label} on input of shape {tuple(x.shape)}")
            n_ref = sum(p.numel() for p in expected.parameters())
            expect_equal(got["n_params"], n_ref, f"number of parameters of {label}",
                         hint="build exactly the layers listed in the docstring")
            expect_equal(got["shapes"], sorted([list(p.shape) for p in expected.parameters()]),
                         f"parameter shapes of {label}")
        with checks.case(f"{label} with the reference's weights"):
            model = getattr(ref, cls)(**kwargs).eval()
            state = random_state(model, g)
            got = student.probe("module_outputs", cls=cls, kwargs=kwargs, state=state, x=x)
            expect("absent" not in got, label, got.get("absent", ""))
            what = f"{label} with the reference's weights on input of shape {tuple(x.shape)} (eval mode)"
            _expect_loaded(got, what)
            with torch.no_grad():
                expected_out = model(x)
            expect_close(got["out"], expected_out, what, atol=1e-4, rtol=1e-4, hint=hint)
    return checks


@graded(points=3)
def test_mlp(student):
    """MLPClassifier: output shape, parameter count, layer shapes, and the reference's logits under the same weights"""
    return _module_checks(student, "MLPClassifier", [{}, {"in_dim": 20, "hidden": 7, "n_classes": 3}],
                          lambda kw: (4, 1, 28, 28) if kw.get("in_dim", 784) == 784 else (4, 1, 4, 5),
                          hint="Flatten -> Linear -> ReLU -> Linear -> ReLU -> Linear, and return the raw logits (no softmax)")


@graded(points=3)
def test_cnn(student):
    """CNNClassifier: output shape, parameter count, layer shapes, and the reference's logits under the same weights"""
    return _module_checks(student, "CNNClassifier", [{}, {"n_classes": 4}], lambda kw: (3, 1, 28, 28),
                          hint="conv -> ReLU -> max-pool twice, then Flatten -> Linear -> ReLU -> Dropout -> Linear; "
                               "return the raw logits (no softmax)")


def _linear_problem(student, n=50, d=3, batch=16):
    g = student.rng()
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]  # last batch is smaller
    weight, bias = torch.randn(2, d, generator=g) * 0.1, torch.zeros(2)
    return batches, weight, bias


def _reference_training(batches, weight, bias, lr, epochs):
    model = torch.nn.Linear(weight.shape[1], 2)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = [ref.train_one_epoch(model, batches, opt, F.cross_entropy) for _ in range(epochs)]
    return losses, model


@graded(points=4)
def test_train_one_epoch(student):
    """train_one_epoch: train mode, one step per batch, per-example mean loss, correct updates"""
    batches, weight, bias = _linear_problem(student)
    lr, epochs = 0.5, 3
    got = student.probe("train_epochs", weight=weight, bias=bias, batches=batches, lr=lr, epochs=epochs)
    losses, model = _reference_training(batches, weight, bias, lr, epochs)
    checks = Checks()
    what = "train_one_epoch on 50 examples in batches of 16 (last batch 2)"
    with checks.case("model in train mode"):
        expect(all(got["modes"]) and len(got["modes"]) > 0, what, "the model was not in train mode during the forward "
               "passes", hint="call model.train() at the start (the grader hands you a model in eval mode)")
    with checks.case("one optimizer step per batch"):
        expect_equal(got["steps"], len(batches) * epochs, f"optimizer.step() calls over {epochs} epochs of {what}")
    with checks.case("returned loss"):
        expect_type(got["losses"], list, what)
        expect_close(torch.tensor(got["losses"], dtype=torch.float64), torch.tensor(losses, dtype=torch.float64),
                     f"losses returned by {epochs} calls of {what}", atol=1e-5,
                     hint="return the mean loss per example: weight each batch's loss by its size")
    with checks.case("parameter updates"):
        expect_close(got["weight"], model.weight.detach(), f"weights after {epochs} epochs of {what}", atol=1e-5,
                     hint="zero_grad -> forward -> loss -> backward -> step, once per batch")
        expect(got["losses"][-1] < got["losses"][0], what, "the training loss did not decrease over 3 epochs")
    return checks


EVALUATE_BUDGET_MB = 96  # the reference evaluate peaks ~22 MB here; with autograd recording, ~190 MB


@graded(points=3)
def test_evaluate(student):
    """evaluate: eval mode, no gradients (within a memory budget), per-example loss and accuracy, mode restored"""
    batches, weight, bias = _linear_problem(student, n=70, batch=32)
    model = torch.nn.Linear(weight.shape[1], 2)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    expected = ref.evaluate(model, batches, F.cross_entropy)  # the probe's Dropout is inactive in eval mode
    probe_x = torch.randn(16, weight.shape[1], generator=student.rng())
    with torch.no_grad():
        eval_out = model(probe_x)
    checks = Checks()
    what = "evaluate on 70 examples in batches of 32 (a model with Dropout(0.5))"
    for start_training in (True, False):
        label = f"model handed over in {'train' if start_training else 'eval'} mode"
        with checks.case(label):
            try:
                # An address-space limit set from outside: an autograd graph does not fit in it.
                with student.memory_budget(EVALUATE_BUDGET_MB):
                    got = student.probe("evaluate_model", weight=weight, bias=bias, batches=batches,
                                        start_training=start_training, probe_x=probe_x)
            except StudentError as e:
                raise Fail(f"{what}: {e}\n    Hint: run the forward passes under torch.no_grad(): the grader's model "
                           "keeps large activations for backward when autograd records") from None
            expect_type(got["result"], dict, what)
            expect(set(got["result"]) >= {"loss", "accuracy"}, what, f"expected keys 'loss' and 'accuracy', got {sorted(got['result'])}")
            expect_close(got["result"]["loss"], expected["loss"], f"{what}: loss", atol=1e-5,
                         hint="call model.eval() (dropout must be off) and average the loss per example")
            expect_close(got["result"]["accuracy"], expected["accuracy"], f"{what}: accuracy", atol=1e-6,
                         hint="call model.eval() (dropout must be off)")
            restored = not torch.allclose(got["after"], eval_out) if start_training else torch.allclose(got["after"], eval_out)
            expect(restored, what, "the model was not put back in the mode it was handed over in (its dropout "
                   f"{'is off' if start_training else 'is on'} after the call)",
                   hint="remember model.training before, and call model.train(previous) at the end")
    return checks


@graded(points=2, timeout=60)
def test_cnn_training_gate(student):
    """Training gate: your CNN trained with your train_one_epoch reaches 95 % on held-out digits"""
    from genai_course.data import load_mnist

    x, y = load_mnist("val")
    g = torch.Generator().manual_seed(10423)
    perm = torch.randperm(len(x), generator=g)
    train_idx, test_idx = perm[:8000], perm[8000:9000]
    preds = student.probe("cnn_training_gate", train_x=x[train_idx], train_y=y[train_idx], test_x=x[test_idx],
                          epochs=2, batch_size=64, lr=2e-3)
    expect_shape(preds, (1000,), "CNN predictions on 1,000 held-out digits")
    acc = (preds == y[test_idx]).float().mean().item()
    expect(acc >= 0.95, "CNNClassifier trained 2 epochs on 8,000 digits (Adam, lr 2e-3)",
           f"test accuracy {acc:.3f} < 0.95", hint="check the CNN layers and the training loop; the reference reaches ~0.97")
