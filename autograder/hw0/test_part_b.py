"""HW0 part B (text): tokenize, build_vocab, encode, pad_batch, BagOfEmbeddings and the stronger
model (TextCNN or GRUClassifier), with padding invariance checked exactly."""
import torch
import torch.nn.functional as F

from genai_course.grading import Checks, Fail, StudentError, expect, expect_close, expect_equal, expect_shape, graded, reference
from genai_course.grading.weights import expect_loaded, random_state

ref = reference("hw0")


@graded(points=1)
def test_tokenize(student):
    """tokenize: lower-casing, apostrophes, digits and punctuation"""
    checks = Checks()
    for text in ["It's a GREAT film -- 10/10!", "  no   spaces\tor\nnewlines ", "director's cut, isn't it?",
                 "", "C'mon... what's 'up'?!", "Ünïcödé and ASCII"]:
        with checks.case(repr(text[:30])):
            expect_equal(student.call("tokenize", text), ref.tokenize(text), f"tokenize({text!r})",
                         hint="lower-case first, then re.findall(TOKEN_PATTERN, ...)")
    return checks


@graded(points=2)
def test_build_vocab(student):
    """build_vocab: reserved ids, frequency cut-off, order by count then alphabetically"""
    g = student.rng()
    words = [f"w{i}" for i in range(30)]
    random_lists = [[words[int(j)] for j in torch.randint(0, 30, (int(n),), generator=g)]
                    for n in torch.randint(0, 12, (40,), generator=g)]
    cases = {
        "ties broken alphabetically": ([["b", "a", "c"], ["c", "b", "a"], ["d"]], 2),
        "min_freq=1 keeps everything": ([["x", "y"], ["y"]], 1),
        "min_freq=3 cut-off": ([["a"] * 3, ["b"] * 2, ["c"] * 4], 3),
        "40 random token lists": (random_lists, 2),
        "no tokens at all": ([], 2),
    }
    checks = Checks()
    for label, (lists, min_freq) in cases.items():
        with checks.case(label):
            expect_equal(student.call("build_vocab", lists, min_freq=min_freq), ref.build_vocab(lists, min_freq=min_freq),
                         f"build_vocab(<{label}>, min_freq={min_freq})",
                         hint="'<pad>' -> 0, '<unk>' -> 1, then count >= min_freq sorted by (-count, token)")
    return checks


@graded(points=2)
def test_encode(student):
    """encode: truncation to max_len, unknown tokens, dtype and empty input"""
    vocab = {"<pad>": 0, "<unk>": 1, "good": 2, "film": 3, "bad": 4}
    checks = Checks()
    for tokens, max_len in [(["good", "film"], 5), (["good", "awful", "film", "bad"], 3), (["zzz"], 1),
                            (["good"] * 10, 4), ([], 3)]:
        with checks.case(f"{len(tokens)} tokens, max_len={max_len}"):
            expect_equal(student.call("encode", tokens, vocab, max_len), ref.encode(tokens, vocab, max_len),
                         f"encode({tokens}, vocab, max_len={max_len})",
                         hint="keep tokens[:max_len]; unknown tokens -> vocab['<unk>']; dtype torch.long")
    return checks


@graded(points=2)
def test_pad_batch(student):
    """pad_batch: right padding, lengths, custom pad_id"""
    g = student.rng()
    checks = Checks()
    seqs = [torch.randint(2, 50, (int(n),), generator=g) for n in (5, 1, 8, 3)]
    for label, batch, pad_id in [("4 sequences", seqs, 0), ("pad_id=7", seqs[:2], 7), ("one sequence", seqs[2:3], 0),
                                 ("an empty sequence among others", [seqs[0], torch.zeros(0, dtype=torch.long)], 0)]:
        with checks.case(label):
            got = student.call("pad_batch", batch, pad_id=pad_id)
            exp_ids, exp_len = ref.pad_batch(batch, pad_id=pad_id)
            expect(isinstance(got, (list, tuple)) and len(got) == 2, f"pad_batch({label})",
                   "expected a tuple (ids, lengths)")
            expect_equal(got[0], exp_ids, f"pad_batch({label}) ids", hint="shape (B, max length), tail filled with pad_id")
            expect_equal(got[1], exp_len, f"pad_batch({label}) lengths")
    return checks


def _expect_loaded(got, what):
    expect_loaded(got, what, hint="build exactly the layers the docstring lists (types, shapes, biases)")


def _reference_weights_case(student, checks, cls, kwargs, ids, g, hint):
    """The reference's weights (pad row zero, as padding_idx keeps it) loaded into the student's model must
    give the reference's logits."""
    with checks.case("the reference's weights give the reference's logits"):
        model = getattr(ref, cls)(**kwargs).eval()
        state = random_state(model, g)
        pad = kwargs.get("pad_id", 0)
        for path, params in state:
            if path == "embed":
                params["weight"][pad] = 0.0
        with torch.no_grad():
            model.embed.weight[pad] = 0.0
            expected = model(ids)
        got = student.probe("text_model_loaded", cls=cls, kwargs=kwargs, state=state, ids=ids)
        what = f"{cls} with the reference's weights on ids of shape {tuple(ids.shape)} (eval mode)"
        expect("absent" not in got, cls, got.get("absent", ""))
        _expect_loaded(got, what)
        expect_close(got["out"], expected, what, atol=1e-4, rtol=1e-4, hint=hint)


def _id_batches(g, vocab_size, pad_id=0):
    """A right-padded batch, the same with extra padding, and a batch with an all-padding row."""
    lengths = torch.tensor([7, 3, 5, 1])
    ids = torch.full((4, 7), pad_id, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        ids[i, :n] = torch.randint(2, vocab_size, (n,), generator=g)
    more = torch.cat([ids, torch.full((4, 5), pad_id, dtype=torch.long)], dim=1)
    with_empty = torch.cat([ids[:2], torch.full((1, 7), pad_id, dtype=torch.long)])
    return [ids, more, with_empty]


@graded(points=3)
def test_bag_of_embeddings(student):
    """BagOfEmbeddings: output shape, masked mean over real tokens, padding invariance"""
    V, D, C = 40, 6, 3
    batches = _id_batches(student.rng(), V)
    got = student.probe("text_model", cls="BagOfEmbeddings", kwargs={"vocab_size": V, "dim": D, "n_classes": C},
                        batches=batches)
    expect("absent" not in got, "BagOfEmbeddings", got.get("absent", ""))
    checks = Checks()
    with checks.case("output shape"):
        expect_shape(got["outs"][0], (4, C), "BagOfEmbeddings(40, 6, 3) on ids of shape (4, 7)")
    with checks.case("padding invariance"):
        expect_close(got["outs"][1], got["outs"][0], "BagOfEmbeddings on the same ids with 5 more pad columns", atol=1e-5,
                     hint="average only over positions where ids != pad_id")
    with checks.case("masked mean of embeddings -> linear layer"):
        w = got["weights"]
        expect(len(w["embedding"]) == 1 and len(w["linear"]) == 1, "BagOfEmbeddings",
               "expected exactly one nn.Embedding and one nn.Linear")
        emb, (lw, lb) = w["embedding"][0], w["linear"][0]
        ids = batches[0]
        mask = (ids != 0).unsqueeze(-1).float()
        mean = (emb[ids] * mask).sum(1) / mask.sum(1).clamp(min=1)
        expect_close(got["outs"][0], mean @ lw.T + (lb if lb is not None else 0), "BagOfEmbeddings logits", atol=1e-5,
                     hint="mean of embeddings over non-pad tokens, then the linear layer")
    with checks.case("an all-padding row gives finite logits"):
        expect(bool(torch.isfinite(got["outs"][2]).all()), "BagOfEmbeddings on a batch with an all-padding row",
               "the output has NaN or inf", hint="divide by max(count, 1)")
    _reference_weights_case(student, checks, "BagOfEmbeddings", {"vocab_size": V, "dim": D, "n_classes": C}, batches[0],
                            student.rng(), hint="mean of the embeddings over non-pad tokens, then the linear layer")
    return checks


def _stronger_checks(student, cls, kwargs, build_ref):
    V = kwargs["vocab_size"]
    batches = _id_batches(student.rng(), V)
    got = student.probe("text_model", cls=cls, kwargs=kwargs, batches=batches)
    expect("absent" not in got, cls, got.get("absent", ""))
    checks = Checks()
    with checks.case("output shape"):
        expect_shape(got["outs"][0], (4, kwargs["n_classes"]), f"{cls} on ids of shape (4, 7)")
    with checks.case("padding invariance"):
        expect_close(got["outs"][1], got["outs"][0], f"{cls} on the same ids with 5 more pad columns", atol=1e-5,
                     hint="padding must not change any output: mask pad positions / pack the sequence")
    with checks.case("an all-padding row gives finite logits"):
        expect(bool(torch.isfinite(got["outs"][2]).all()), f"{cls} with an all-padding row", "NaN or inf in the output",
               hint="treat the length as at least 1")
    with checks.case("matches the specified architecture"):
        model = build_ref(got["weights"])
        with torch.no_grad():
            expected = model.eval()(batches[0])
        expect_close(got["outs"][0], expected, f"{cls} logits with your weights in the reference architecture",
                     atol=1e-4, hint="follow the layer description in the docstring exactly")
    _reference_weights_case(student, checks, cls, kwargs, batches[0], student.rng(),
                            hint="follow the layer description in the docstring exactly")
    return checks


def _load_embedding(model, w, kwargs):
    """The student's embedding table into the reference model, pad row zeroed: a model that masks pad
    positions instead of using padding_idx may leave that row non-zero, and never reads it."""
    model.embed.weight.copy_(w["embedding"][0])
    model.embed.weight[kwargs.get("pad_id", 0)] = 0


def _load_text_cnn(kwargs):
    def build(w):
        m = ref.TextCNN(**kwargs)
        expect(len(w["conv"]) == len(m.convs) and len(w["embedding"]) == 1 and len(w["linear"]) == 1, "TextCNN",
               "expected one nn.Embedding, one nn.Conv1d per width and one nn.Linear")
        with torch.no_grad():
            _load_embedding(m, w, kwargs)
            for conv, (cw, cb) in zip(m.convs, w["conv"]):
                conv.weight.copy_(cw)
                conv.bias.copy_(cb if cb is not None else torch.zeros_like(conv.bias))
            m.out.weight.copy_(w["linear"][0][0])
            m.out.bias.copy_(w["linear"][0][1])
        return m
    return build


def _load_gru(kwargs):
    def build(w):
        m = ref.GRUClassifier(**kwargs)
        expect(len(w["gru"]) == 1 and len(w["embedding"]) == 1 and len(w["linear"]) == 1, "GRUClassifier",
               "expected one nn.Embedding, one nn.GRU and one nn.Linear")
        with torch.no_grad():
            _load_embedding(m, w, kwargs)
            m.gru.load_state_dict(w["gru"][0])
            m.out.weight.copy_(w["linear"][0][0])
            m.out.bias.copy_(w["linear"][0][1])
        return m
    return build


@graded(points=5, timeout=20)
def test_stronger_model(student):
    """TextCNN or GRUClassifier (the better of the two): shape, padding invariance, architecture"""
    cnn_kwargs = {"vocab_size": 30, "dim": 8, "n_classes": 2, "n_filters": 5}
    gru_kwargs = {"vocab_size": 30, "dim": 8, "hidden": 6, "n_classes": 2}
    results = []
    for cls, kwargs, build in [("TextCNN", cnn_kwargs, _load_text_cnn(cnn_kwargs)),
                               ("GRUClassifier", gru_kwargs, _load_gru(gru_kwargs))]:
        try:
            checks = _stronger_checks(student, cls, kwargs, build)
        except (Fail, StudentError) as e:
            results.append((0.0, f"{cls}: {e}"))
            continue
        results.append((checks.fraction, f"{cls}: {checks.message()}"))
    best = max(results, key=lambda r: r[0])
    if best[0] == 0.0:
        raise Fail("neither TextCNN nor GRUClassifier works yet:\n" + "\n".join(r[1] for r in results))
    return best  # (fraction, message): the better of the two models counts
