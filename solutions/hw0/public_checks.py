"""Public checks of HW0, run by `genai-course check hw0.ipynb`: small, hand-computed cases, one or
more per graded definition. When a result is wrong, the check also computes what the common buggy
versions would return on the same input and names the bug your output matches. The hidden suite
that grades the homework uses other inputs and checks much more."""
import re

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, Fail, StudentError, expect, expect_close, expect_equal, expect_shape, graded
from genai_course.grading.api import diagnose


@graded(points=1)
def check_accuracy(student):
    """accuracy: a tiny batch with a tie, and an empty batch"""
    logits, labels = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    got = student.call("accuracy", logits, labels)
    expect(not isinstance(got, torch.Tensor), "accuracy on 3 examples", f"returned a tensor ({got!r}), not a Python float",
           hint="this looks like a known bug: a 0-d tensor was returned; .item() turns it into a float")
    expect_close(got, 2 / 3, "accuracy on 3 examples (the tie [1, 1] predicts class 0)", atol=1e-6, hint=diagnose(got, {
        "returned the number of correct predictions; divide by the batch size": 2.0,
        "the tie went to the last maximum; torch.argmax picks the first": 1.0,
    }, default="(logits.argmax(dim=-1) == labels).float().mean().item()"))
    expect_close(student.call("accuracy", torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), 0.0,
                 "accuracy(empty batch)", hint="return 0.0 when the batch is empty (the mean of nothing is NaN)")


def _built(got):
    """A probe's reply, or Fail when the class is not defined at all."""
    if isinstance(got, dict) and "absent" in got:
        raise Fail(got["absent"])
    return got


def _by_shape(params):
    """The student's parameters grouped by shape, in definition order."""
    groups = {}
    for p in params:
        groups.setdefault(tuple(p.shape), []).append(p)
    return groups


def _mlp(params, x, acts=(F.relu, F.relu), pools=(), last=lambda z: z):
    s = _by_shape(params)
    (w1,), (w2,), (w3,) = s[(256, 784)], s[(256, 256)], s[(10, 256)]
    b1, b2 = s[(256,)]
    h = acts[0](x.flatten(1) @ w1.T + b1)
    return last(acts[1](h @ w2.T + b2) @ w3.T + s[(10,)][0])


def _cnn(params, x, acts=(F.relu, F.relu, F.relu), pools=(F.max_pool2d, F.max_pool2d), last=lambda z: z):
    s = _by_shape(params)
    h = pools[0](acts[0](F.conv2d(x, s[(32, 1, 3, 3)][0], s[(32,)][0], padding=1)), 2)
    h = pools[1](acts[1](F.conv2d(h, s[(64, 32, 3, 3)][0], s[(64,)][0], padding=1)), 2)
    h = acts[2](h.flatten(1) @ s[(128, 3136)][0].T + s[(128,)][0])
    return last(h @ s[(10, 128)][0].T + s[(10,)][0])


_WHERE = {"MLPClassifier": ("after the first Linear", "after the second Linear"),
          "CNNClassifier": ("after the first Conv2d", "after the second Conv2d", "after Linear(3136, 128) in the head")}


def _layer_bugs(cls, ref, params, x):
    """What the model returns with each common layer bug, computed with the student's own weights."""
    relu = F.relu
    n = len(_WHERE[cls])
    out = {"no non-linearity at all: put a ReLU after every hidden layer": dict(acts=(lambda z: z,) * n),
           "returned probabilities (softmax); return the logits, the loss applies the softmax": dict(last=lambda z: z.softmax(-1)),
           "returned log-probabilities (log_softmax); return the logits": dict(last=lambda z: z.log_softmax(-1)),
           "a ReLU after the output layer: logits must be able to be negative": dict(last=F.relu)}
    for i, where in enumerate(_WHERE[cls]):
        for name, f in (("no ReLU", lambda z: z), ("a Sigmoid instead of the ReLU", torch.sigmoid), ("a Tanh instead of the ReLU", torch.tanh)):
            out[f"{name} {where}"] = dict(acts=tuple(f if j == i else relu for j in range(n)))
    if cls == "CNNClassifier":
        for i in range(2):
            out[f"average pooling after Conv2d {i + 1}; the table asks for MaxPool2d(2)"] = dict(
                pools=tuple(F.avg_pool2d if j == i else F.max_pool2d for j in range(2)))
        out["average pooling in both conv blocks; the table asks for MaxPool2d(2)"] = dict(pools=(F.avg_pool2d, F.avg_pool2d))
    return {name: ref(params, x, **kw) for name, kw in out.items()}


@graded(points=1)
def check_models(student):
    """MLPClassifier and CNNClassifier: output shapes, parameter counts, layers applied as the headings list them"""
    checks = Checks()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for cls, n_params, ref in (("MLPClassifier", 269_322, _mlp), ("CNNClassifier", 421_642, _cnn)):
        with checks.case(cls):
            got = _built(student.probe("forward", cls=cls, kwargs={}, x=x))
            expect_shape(got["out"], (4, 10), f"{cls}() on a (4, 1, 28, 28) batch")
            expect_equal(got["n_params"], n_params, f"parameters of {cls}()",
                         hint="build exactly the layers of the heading (Linear/Conv2d with biases)")
            try:  # the layers as the heading lists them, with your weights (found by their shapes)
                want = ref(got["params"], x)
            except (KeyError, ValueError, RuntimeError):
                continue  # laid out otherwise: the hidden suite checks it
            expect_close(got["out"], want, f"{cls}() forward vs the heading's layers applied in order with your weights",
                         atol=1e-4, hint=diagnose(got["out"], _layer_bugs(cls, ref, got["params"], x), atol=1e-4,
                                                  default="apply the layers exactly in the heading's order (ReLU after "
                                                          "every hidden layer, max pooling, no softmax at the end)"))
    return checks


def _train_reference(weight, bias, batches, lr, epochs, zero_grad=True, report="per-example"):
    """train_one_epoch as the docstring states it (and its common bugs), on nn.Linear(weight, bias)."""
    model = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        per = []
        for x, y in batches:
            if zero_grad:
                opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            per.append((loss.item(), len(y)))
        total = sum(l * n for l, n in per)
        losses.append({"per-example": total / sum(n for _, n in per), "batch-mean": sum(l for l, _ in per) / len(per),
                       "last": per[-1][0], "sum": total}[report])
    return losses, model.weight.detach().clone()


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(19, 2, generator=g)
    y = (x.sum(dim=1) > 0).long()
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 19, 8)]  # sizes 8, 8, 3
    return batches, torch.randn(2, 2, generator=g) * 0.5, torch.zeros(2)


@graded(points=1)
def check_train_one_epoch(student):
    """train_one_epoch: train mode, zero_grad/backward/step per batch, per-example mean loss"""
    batches, weight, bias = _toy()
    got = student.probe("train_epochs", weight=weight, bias=bias, batches=batches, lr=0.5, epochs=2)
    expect(all(got["modes"]), "train_one_epoch", "the model ran in eval mode (it starts in eval mode here)",
           hint="call model.train() at the start")
    expect_equal(got["steps"], 6, "optimizer steps in 2 epochs of 3 batches", hint="one optimizer.step() per batch")
    want = _train_reference(weight, bias, batches, 0.5, 2)
    candidates = {
        "no optimizer.zero_grad(): gradients of earlier batches pile up": _train_reference(weight, bias, batches, 0.5, 2, zero_grad=False),
        "returned the mean of the batch losses; weight each batch by its size (the last batch has 3 examples)":
            _train_reference(weight, bias, batches, 0.5, 2, report="batch-mean"),
        "returned the loss of the last batch only": _train_reference(weight, bias, batches, 0.5, 2, report="last"),
        "returned the sum of the losses; divide by the number of examples": _train_reference(weight, bias, batches, 0.5, 2, report="sum"),
    }
    pair = (got["losses"], got["weight"])
    hint = diagnose(pair, candidates, default="zero_grad -> forward -> loss -> backward -> step; accumulate loss.item() * len(y)")
    expect_close(got["weight"], want[1], "weights after 2 epochs of SGD", atol=1e-5, hint=hint)
    expect_close(torch.tensor(got["losses"]), torch.tensor(want[0]), "returned mean losses of 2 epochs", atol=1e-5, hint=hint)


@graded(points=1)
def check_evaluate(student):
    """evaluate: eval mode, no gradients, per-example mean loss and accuracy, mode restored"""
    batches, weight, bias = _toy()
    got = student.probe("evaluate_model", weight=weight, bias=bias, batches=batches, start_training=True)
    expect(not any(got["modes"]), "evaluate", "the model ran in train mode", hint="call model.eval() before the loop")
    expect(not any(got["grad_enabled"]), "evaluate", "gradients were tracked", hint="wrap the loop in torch.no_grad()")
    expect(got["mode_after"] is True, "evaluate", "the model was left in eval mode (it was in train mode before)",
           hint="remember model.training and call model.train(previous_mode) at the end")
    expect(isinstance(got["result"], dict) and set(got["result"]) == {"loss", "accuracy"}, "evaluate",
           f"expected a dict with keys 'loss' and 'accuracy', got {got['result']!r}"[:200])
    stats = []
    for x, y in batches:
        logits = x @ weight.T + bias
        stats.append((F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item(), len(y)))
    n = sum(s[2] for s in stats)
    want = {"loss": sum(s[0] * s[2] for s in stats) / n, "accuracy": sum(s[1] * s[2] for s in stats) / n}
    bug = diagnose(got["result"], {
        "averaged the batch means; weight each batch by its size (the last batch has 3 examples)":
            {"loss": sum(s[0] for s in stats) / 3, "accuracy": sum(s[1] for s in stats) / 3},
        "returned the number of correct predictions as 'accuracy'; divide by the number of examples":
            {"loss": want["loss"], "accuracy": float(round(sum(s[1] * s[2] for s in stats)))},
    }, default="sum loss.item() * len(y) and the correct predictions, divide both by the number of examples")
    for key in ("loss", "accuracy"):
        expect_close(got["result"][key], want[key], f"evaluate(...)['{key}'] on batches of 8, 8 and 3", atol=1e-5, hint=bug)


@graded(points=1)
def check_text_pipeline(student):
    """tokenize, build_vocab, encode and pad_batch on tiny inputs"""
    checks = Checks()
    pattern = r"[a-z0-9]+(?:'[a-z]+)?"
    for text in ("It's GREAT -- 10/10!", "Director's cut: don't."):
        with checks.case(f"tokenize({text!r})"):
            got = student.call("tokenize", text)
            expect_equal(got, re.findall(pattern, text.lower()), f"tokenize({text!r})", hint=diagnose(got, {
                "the text is not lower-cased first": re.findall(pattern.replace("a-z", "A-Za-z"), text),
                "split on spaces; use re.findall(TOKEN_PATTERN, text.lower())": text.lower().split(),
                "the apostrophe suffix is split off: use the full TOKEN_PATTERN": re.findall(r"[a-z0-9]+", text.lower()),
            }))
    with checks.case("build_vocab"):
        tokens = [["b", "c", "b"], ["a", "c", "d"], ["b"], ["a"]]  # b: 3, c: 2, a: 2, d: 1
        got = student.call("build_vocab", tokens, min_freq=2)
        expect_equal(got, {"<pad>": 0, "<unk>": 1, "b": 2, "a": 3, "c": 4}, "build_vocab(min_freq=2)", hint=diagnose(got, {
            "ties are not broken alphabetically (a and c both occur twice): sort by (-count, token)":
                {"<pad>": 0, "<unk>": 1, "b": 2, "c": 3, "a": 4},
            "min_freq is exclusive: keep tokens seen AT LEAST min_freq times (>=)": {"<pad>": 0, "<unk>": 1, "b": 2},
            "sorted alphabetically only: most frequent first, then alphabetically": {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3, "c": 4},
            "the reserved ids are missing: <pad> -> 0 and <unk> -> 1 come first": {"b": 0, "a": 1, "c": 2},
        }))
    with checks.case("encode"):
        vocab = {"<pad>": 0, "<unk>": 1, "good": 2, "film": 3}
        got = student.call("encode", ["good", "bad", "film"], vocab, 2)
        expect_equal(got, torch.tensor([2, 1]), "encode(['good', 'bad', 'film'], vocab, max_len=2)", hint=diagnose(got, {
            "values are right; the dtype must be int64 (torch.long)": torch.tensor([2, 1]),
            "unknown tokens map to <pad> (0); they map to vocab['<unk>']": torch.tensor([2, 0]),
            "kept the LAST max_len tokens; keep the first ones": torch.tensor([1, 3]),
            "unknown tokens were dropped; map them to vocab['<unk>']": torch.tensor([2, 3]),
            "no truncation: keep only the first max_len tokens": torch.tensor([2, 1, 3]),
        }))
    with checks.case("pad_batch"):
        ids, lengths = student.call("pad_batch", [torch.tensor([5, 6, 7]), torch.tensor([8])], pad_id=9)
        expect_equal(ids, torch.tensor([[5, 6, 7], [8, 9, 9]]), "pad_batch([[5, 6, 7], [8]], pad_id=9) ids", hint=diagnose(ids, {
            "padded on the left; pad on the right": torch.tensor([[5, 6, 7], [9, 9, 8]]),
            "pad_id is ignored: fill with pad_id, not 0": torch.tensor([[5, 6, 7], [8, 0, 0]]),
        }))
        expect_equal(lengths, torch.tensor([3, 1]), "pad_batch lengths", hint="an int64 tensor of the original lengths")
    with checks.case("pad_batch of one empty sequence"):
        ids, lengths = student.call("pad_batch", [torch.zeros(0, dtype=torch.long)])
        expect_equal(ids, torch.tensor([[0]]), "pad_batch([empty]) ids", hint="L = max(1, longest length)")
    return checks


def _padding_invariant(student, cls, kwargs, hint):
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    # Both calls run with the same seed inside one check, so the two models start identical.
    a = _built(student.probe("forward", cls=cls, kwargs=kwargs, x=ids))["out"]
    b = _built(student.probe("forward", cls=cls, kwargs=kwargs, x=padded))["out"]
    expect_shape(a, (2, 2), f"{cls} output")
    expect_close(b, a, f"{cls} with 3 extra pad columns", atol=1e-5, hint=hint)


@graded(points=1)
def check_bag_of_embeddings(student):
    """BagOfEmbeddings: the mean over real tokens (an all-padding row too), padding ignored"""
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0], [0, 0, 0, 0]])
    got = _built(student.probe("text_forward", cls="BagOfEmbeddings", kwargs={"vocab_size": 20, "dim": 8, "n_classes": 2}, x=ids))
    expect_shape(got["out"], (3, 2), "BagOfEmbeddings(20, 8, 2) on ids (3, 4)")
    if got["embedding"] is not None and got["linear"] is not None:
        table, (w, b) = got["embedding"], got["linear"]
        e, mask = table[ids], (ids != 0).unsqueeze(-1).float()
        mean = (e * mask).sum(1) / mask.sum(1).clamp(min=1)
        candidates = {
            "averaged over all L positions, pads included: divide by the number of real tokens":
                e.mean(1) @ w.T + b,
            "summed the embeddings; average them over the real tokens": (e * mask).sum(1) @ w.T + b,
            "an all-padding row divides 0 by 0: divide by max(count, 1)": ((e * mask).sum(1) / mask.sum(1)) @ w.T + b,
        }
        expect_close(got["out"], mean @ w.T + b, "BagOfEmbeddings output (your weights, the masked mean)", atol=1e-5,
                     hint=diagnose(got["out"], candidates, default="mask the pads, sum, divide by max(count, 1), then the linear layer"))
    _padding_invariant(student, "BagOfEmbeddings", {"vocab_size": 20, "dim": 8, "n_classes": 2},
                       "average over the real tokens only: a mask (ids != pad_id), divide by the count of real tokens")


@graded(points=1)
def check_stronger_model(student):
    """TextCNN or GRUClassifier (one is enough) ignores padding"""
    problems = []
    for cls, kwargs, hint in (
            ("TextCNN", {"vocab_size": 20, "dim": 8, "n_classes": 2, "n_filters": 4},
             "take the maximum only over windows that start at a real token (t < length); pad embeddings are zero "
             "because of padding_idx"),
            ("GRUClassifier", {"vocab_size": 20, "dim": 8, "hidden": 6, "n_classes": 2},
             "pack the embedded sequence with the true lengths (pack_padded_sequence, enforce_sorted=False) and use "
             "the final hidden state, not the output at the last (padded) position")):
        try:
            _padding_invariant(student, cls, kwargs, hint)
            return None
        except (Fail, StudentError) as e:
            problems.append(str(e))
    raise Fail("neither model works yet:\n" + "\n".join(problems))
