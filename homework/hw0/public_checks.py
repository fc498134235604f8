"""Public checks of HW0, run by `genai-course check hw0.ipynb`: small, hand-computed cases only.
The hidden suite that grades the homework uses other inputs and checks much more."""
import torch

from genai_course.grading import Checks, Fail, StudentError, expect, expect_close, expect_equal, expect_shape, graded


@graded(points=1)
def check_accuracy(student):
    """accuracy: a tiny batch with a tie, and an empty batch"""
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]])
    expect_close(student.call("accuracy", logits, torch.tensor([0, 1, 1])), 2 / 3, "accuracy on 3 examples", atol=1e-6)
    expect_close(student.call("accuracy", torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), 0.0, "accuracy(empty batch)")


@graded(points=1)
def check_models(student):
    """MLPClassifier and CNNClassifier: output shapes and parameter counts"""
    checks = Checks()
    for cls, n_params in (("MLPClassifier", 269_322), ("CNNClassifier", 421_642)):
        with checks.case(cls):
            got = student.probe("forward", cls=cls, kwargs={}, x=torch.zeros(2, 1, 28, 28))
            expect_shape(got["out"], (2, 10), f"{cls}() on a (2, 1, 28, 28) batch")
            expect_equal(got["n_params"], n_params, f"parameters of {cls}()")
    return checks


@graded(points=1)
def check_training_loop(student):
    """train_one_epoch and evaluate on a separable toy problem"""
    got = student.probe("toy_training")
    expect(got["losses"][-1] < got["losses"][0], "train_one_epoch", f"loss did not decrease: {got['losses']}")
    expect(set(got["eval"]) == {"loss", "accuracy"}, "evaluate", f"keys {sorted(got['eval'])}")
    expect(got["eval"]["accuracy"] > 0.9, "evaluate", f"accuracy {got['eval']['accuracy']:.2f} on an easy problem")


@graded(points=1)
def check_text_pipeline(student):
    """tokenize, build_vocab, encode and pad_batch on tiny inputs"""
    checks = Checks()
    with checks.case("tokenize"):
        expect_equal(student.call("tokenize", "It's GREAT -- 10/10!"), ["it's", "great", "10", "10"], "tokenize")
    with checks.case("build_vocab"):
        expect_equal(student.call("build_vocab", [["b", "a", "b"], ["c", "a", "d"], ["b"]], min_freq=2),
                     {"<pad>": 0, "<unk>": 1, "b": 2, "a": 3}, "build_vocab")
    with checks.case("encode"):
        vocab = {"<pad>": 0, "<unk>": 1, "good": 2, "film": 3}
        expect_equal(student.call("encode", ["good", "bad", "film"], vocab, 2), torch.tensor([2, 1]), "encode(max_len=2)")
    with checks.case("pad_batch"):
        ids, lengths = student.call("pad_batch", [torch.tensor([5, 6, 7]), torch.tensor([8])])
        expect_equal(ids, torch.tensor([[5, 6, 7], [8, 0, 0]]), "pad_batch ids")
        expect_equal(lengths, torch.tensor([3, 1]), "pad_batch lengths")
    return checks


def _padding_invariant(student, cls, kwargs):
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    # Both calls run with the same seed inside one check, so the two models start identical.
    a = student.probe("forward", cls=cls, kwargs=kwargs, x=ids)["out"]
    b = student.probe("forward", cls=cls, kwargs=kwargs, x=padded)["out"]
    expect_shape(a, (2, 2), f"{cls} output")
    expect_close(b, a, f"{cls} with 3 extra pad columns", atol=1e-5, hint="padding must not change the output")


@graded(points=1)
def check_bag_of_embeddings(student):
    """BagOfEmbeddings ignores padding"""
    _padding_invariant(student, "BagOfEmbeddings", {"vocab_size": 20, "dim": 8, "n_classes": 2})


@graded(points=1)
def check_stronger_model(student):
    """TextCNN or GRUClassifier (one is enough) ignores padding"""
    problems = []
    for cls, kwargs in (("TextCNN", {"vocab_size": 20, "dim": 8, "n_classes": 2, "n_filters": 4}),
                        ("GRUClassifier", {"vocab_size": 20, "dim": 8, "hidden": 6, "n_classes": 2})):
        try:
            _padding_invariant(student, cls, kwargs)
            return None
        except (Fail, StudentError) as e:
            problems.append(str(e))
    raise Fail("neither model works yet:\n" + "\n".join(problems))
