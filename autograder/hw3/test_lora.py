"""HW3 hidden suite, Part A: the LoRA layer (peft's LoRA layer and the reference as oracles), injecting it into
a tiny randomly initialised Llama and into a model whose names trip the usual shortcuts, freezing and counting,
saving and strictly loading the adapter.

The helpers that only look at parameter names (A.3, A.4) are tested on models whose LoRA layers are the
grader's own stand-ins (``probes._adapted``), so a bug in LoRALinear does not cost their points too."""
import math

import torch
import torch.nn.functional as F

from genai_course.grading import Checks, expect, expect_close, expect_equal, graded, randint, reference, suite_probes
from genai_course.grading.api import diagnose

ref = reference("hw3")
ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


P = suite_probes(__file__)


def _base(g, in_f, out_f, bias=True, dtype=torch.float32):
    w = (torch.randn(out_f, in_f, generator=g, dtype=torch.float64) / math.sqrt(in_f)).to(dtype)
    b = (torch.randn(out_f, generator=g, dtype=torch.float64) * 0.1).to(dtype) if bias else None
    return w, b


def _factors(g, in_f, out_f, r):
    return torch.randn(r, in_f, generator=g) * 0.3, torch.randn(out_f, r, generator=g) * 0.3


def _peft(weight, bias, A, B, r, alpha):
    """peft's LoRA layer (the oracle) around the same base, with the same factors, dropout off."""
    from peft import LoraConfig
    from peft.tuners.lora.layer import Linear

    base = P._linear(weight, bias)
    layer = Linear(base, "default", config=LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0), r=r, lora_alpha=alpha)
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(A)
        layer.lora_B["default"].weight.copy_(B)
    return layer, base


def _ref_layer(weight, bias, A, B, r, alpha, dropout=0.0):
    base = P._linear(weight, bias)
    layer = ref.LoRALinear(base, r=r, alpha=alpha, dropout=dropout)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    return layer, base


def _expect_shapes(got, A, B, what):
    expect(got["shapes"] == [list(A.shape), list(B.shape)], what,
           f"lora_A / lora_B have shapes {got['shapes']}, expected {list(A.shape)} / {list(B.shape)}",
           hint="lora_A is (r, in_features), lora_B is (out_features, r), both nn.Parameter")


# ---- A.1 LoRALinear ------------------------------------------------------------------------------------------

@graded(points=1, timeout=20)
def test_lora_linear_init(student):
    """LoRALinear at initialisation: equals its base layer, A Kaiming-uniform, B zeros, base frozen, r < 1 rejected"""
    g = student.rng()
    checks = Checks()
    cases = [("float32 with bias", 256, randint(g, 20, 40), randint(g, 8, 16), True, torch.float32),
             ("float64 without bias", randint(g, 40, 64), randint(g, 10, 20), randint(g, 2, 4), False, torch.float64)]
    for label, in_f, out_f, r, bias, dtype in cases:
        alpha = float(randint(g, 1, 4) * r)
        w, b = _base(g, in_f, out_f, bias, dtype)
        x = torch.randn(3, 5, in_f, generator=g, dtype=torch.float64).to(dtype)
        what = f"LoRALinear(nn.Linear({in_f}, {out_f}, bias={bias}) in {str(dtype)[6:]}, r={r}, alpha={alpha:g})"
        got = {}
        with checks.case(f"{label}: A and B are trainable parameters of the right shape and dtype"):
            got = student.probe("lora_init", weight=w, bias=b, r=r, alpha=alpha, x=x)
            for name, shape in (("lora_A", (r, in_f)), ("lora_B", (out_f, r))):
                f = got["A" if name == "lora_A" else "B"]
                expect(f["value"] is not None and f["is_parameter"] and f["requires_grad"], f"{what}.{name}",
                       "is not a trainable nn.Parameter", hint=f"self.{name} = nn.Parameter(...) (requires_grad=True)")
                expect(tuple(f["value"].shape) == shape and f["value"].dtype == dtype, f"{what}.{name}",
                       f"has shape {tuple(f['value'].shape)} and dtype {f['value'].dtype}, expected {shape} and {dtype}",
                       hint="A is (r, in_features), B is (out_features, r), in the base weight's dtype and device")
            expect_equal(got["trainable"], ["lora_A", "lora_B"], f"the trainable parameters of {what}",
                         hint="freeze the base layer: requires_grad_(False) on its weight and bias")
            expect(got["same_base"] and not any(got["base_requires_grad"]), what,
                   "self.base is not the frozen nn.Linear that was passed in", hint="self.base = base; base weights frozen")
            expect(got["merged"] is False, f"{what}.merged", f"is {got['merged']!r} after __init__, expected False")
        if not got or got["B"]["value"] is None or got["A"]["value"] is None:
            continue
        with checks.case(f"{label}: B starts at zero, so the layer equals its base layer"):
            expect(bool((got["B"]["value"] == 0).all()), f"{what}.lora_B", "is not all zeros at initialisation",
                   hint="B must start at zero: the adapted model starts as the pretrained one")
            expect_close(got["out"], F.linear(x, w, b), f"{what}(x) at initialisation, x of shape {tuple(x.shape)}",
                         atol=1e-6, rtol=1e-6, hint="with B = 0 the update is exactly zero: forward = base(x) + ...")
        with checks.case(f"{label}: A is Kaiming-uniform (a = sqrt(5)): uniform on [-1/sqrt(in), 1/sqrt(in)]"):
            A = got["A"]["value"].double()
            bound, n = 1 / math.sqrt(in_f), A.numel()
            hint = "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5)) on A of shape (r, in_features)"
            expect(A.abs().max() <= bound * (1 + 1e-6), f"{what}.lora_A",
                   f"has |A| up to {A.abs().max():.4g}, beyond the bound 1/sqrt(in_features) = {bound:.4g}", hint=hint)
            expect(A.abs().max() >= 0.8 * bound and abs(float(A.mean())) <= 5 * bound / math.sqrt(3 * n), f"{what}.lora_A",
                   f"has max |A| = {A.abs().max():.4g} and mean {A.mean():.3g}: not spread over [-{bound:.4g}, {bound:.4g}]",
                   hint=hint)
            if n >= 1000:
                expect_close(float(A.std()), bound / math.sqrt(3), f"the standard deviation of {what}.lora_A", atol=0,
                             rtol=0.15, hint=hint)
    with checks.case("r < 1 raises ValueError"):
        for r in (0, -randint(g, 1, 3)):
            err = student.probe("lora_bad_rank", r=r)
            expect(err is not None and err["type"] == "ValueError", f"LoRALinear(nn.Linear(5, 3), r={r})",
                   f"raised {err['type']}" if err else "did not raise", hint="raise ValueError when r < 1")
    return checks


@graded(points=2, timeout=20)
def test_lora_linear_forward(student):
    """LoRALinear forward equals peft's LoRA layer for given A, B, r, alpha; gradients reach A and B only"""
    g = student.rng()
    checks = Checks()
    cases = [(randint(g, 12, 24), randint(g, 6, 14), randint(g, 2, 4), True, (5, None)),
             (randint(g, 12, 24), randint(g, 6, 14), randint(g, 5, 8), False, (2, randint(g, 3, 6))),
             (randint(g, 8, 16), randint(g, 8, 16), 1, True, (4, None))]
    for in_f, out_f, r, bias, xshape in cases:
        alpha = float(r * randint(g, 2, 5) + randint(g, 1, 3))  # alpha / r is neither 1, alpha, 1 / r nor r / alpha
        w, b = _base(g, in_f, out_f, bias)
        A, B = _factors(g, in_f, out_f, r)
        x = torch.randn(*[s for s in xshape if s], in_f, generator=g)
        grad_out = torch.randn(*x.shape[:-1], out_f, generator=g)
        label = f"nn.Linear({in_f}, {out_f}, bias={bias}), r={r}, alpha={alpha:g}, x of shape {tuple(x.shape)}"
        with checks.case(label):
            got = student.probe("lora_forward", weight=w, bias=b, A=A, B=B, r=r, alpha=alpha, x=x, grad_out=grad_out)
            _expect_shapes(got, A, B, f"LoRALinear({label})")
            oracle, _ = _peft(w, b, A, B, r, alpha)
            with torch.no_grad():
                want = oracle(x)
            s = alpha / r
            path = x @ A.T @ B.T
            expect_close(got["out"], want, f"LoRALinear({label})(x) against peft's LoRA layer", atol=1e-5, rtol=1e-4,
                         hint=diagnose(got["out"], {"scaling is alpha / r, not alpha": F.linear(x, w, b) + path * alpha,
                                                    "scaling is alpha / r, not r / alpha": F.linear(x, w, b) + path * (r / alpha),
                                                    "forward = base(x) + x @ A^T @ B^T * scaling; the update is missing": F.linear(x, w, b)},
                                       default="forward = base(x) + dropout(x) @ A^T @ B^T * (alpha / r)"))
            layer, base = _ref_layer(w, b, A, B, r, alpha)
            (layer(x) * grad_out).sum().backward()
            expect(not any(got["base_grads"]), f"gradients of LoRALinear({label})",
                   "reach the base layer's weight or bias", hint="freeze the base: base.requires_grad_(False)")
            for name, want_grad in (("grad_A", layer.lora_A.grad), ("grad_B", layer.lora_B.grad)):
                expect(got[name] is not None, f"lora_{name[-1]}.grad after backward", "is None",
                       hint="lora_A and lora_B must be nn.Parameters used in forward")
                expect_close(got[name], want_grad, f"lora_{name[-1]}.grad after backward through LoRALinear({label})",
                             atol=1e-5, rtol=1e-4)
    with checks.case("the scaling attribute"):
        r, alpha = randint(g, 3, 9), float(randint(g, 1, 40))
        got = student.probe("lora_init", weight=torch.zeros(4, 6), bias=None, r=r, alpha=alpha, x=torch.zeros(1, 6))
        expect(isinstance(got["scaling"], float) and math.isclose(got["scaling"], alpha / r, rel_tol=1e-9),
               f"LoRALinear(..., r={r}, alpha={alpha:g}).scaling", f"is {got['scaling']!r}, expected {alpha / r!r}",
               hint="self.scaling = alpha / r, a float (the notebook's adapters_off reads it)")
    return checks


@graded(points=2, timeout=20)
def test_lora_linear_merge(student):
    """merge / unmerge: the merged weight equals peft's, round trip within fp32 tolerance, idempotent; eval() merges, train() unmerges"""
    g = student.rng()
    checks = Checks()
    for bias in (True, False):
        in_f, out_f, r = randint(g, 10, 30), randint(g, 10, 30), randint(g, 2, 6)
        alpha = float(r * randint(g, 2, 4) + 1)
        w, b = _base(g, in_f, out_f, bias)
        A, B = _factors(g, in_f, out_f, r)
        x = torch.randn(6, in_f, generator=g)
        label = f"LoRALinear(nn.Linear({in_f}, {out_f}, bias={bias}), r={r}, alpha={alpha:g})"
        got = {}
        with checks.case(f"{label}: merge() puts scaling * B @ A into the weight, once"):
            got = student.probe("lora_merge", weight=w, bias=b, A=A, B=B, r=r, alpha=alpha, x=x)
            _expect_shapes(got, A, B, label)
            oracle, obase = _peft(w, b, A, B, r, alpha)
            with torch.no_grad():
                want_out = oracle(x)
                oracle.merge()
            merged_w = obase.weight.detach()
            expect(got["merge_merged"] is True, f"{label}.merged after merge()", f"is {got['merge_merged']!r}")
            expect_close(got["merge_w"], merged_w, f"{label}.base.weight after merge(), against peft's merge()",
                         atol=1e-5, rtol=1e-5, hint=diagnose(got["merge_w"], {"merge() forgot the scaling": w + B @ A,
                                                                             "merge() subtracts the update": w - (alpha / r) * B @ A},
                                                            default="W + (alpha / r) * B @ A, in place, without autograd"))
            expect_close(got["merge_out"], want_out, f"{label}(x) while merged", atol=1e-5, rtol=1e-4,
                         hint="while merged, forward is base(x) only: the update is in the weight now")
            expect_close(got["merge2_w"], merged_w, f"{label}.base.weight after merge() twice", atol=1e-5, rtol=1e-5,
                         hint="merge() does nothing when the layer is already merged")
        if "merge_w" not in got:
            continue
        with checks.case(f"{label}: unmerge() restores the weight (once), and the output"):
            expect(got["unmerge_merged"] is False, f"{label}.merged after unmerge()", f"is {got['unmerge_merged']!r}")
            expect_close(got["unmerge_w"], w, f"{label}.base.weight after merge() then unmerge()", atol=1e-5, rtol=1e-5,
                         hint="unmerge() subtracts the same (alpha / r) * B @ A")
            expect_close(got["unmerge2_w"], w, f"{label}.base.weight after unmerge() twice", atol=1e-5, rtol=1e-5,
                         hint="unmerge() does nothing when the layer is not merged")
            expect_close(got["unmerge_out"], got["out"], f"{label}(x) after merge() then unmerge()", atol=1e-5, rtol=1e-4)
        with checks.case(f"{label}: model.eval() merges and model.train() unmerges (inside an nn.Sequential)"):
            expect(got["seq_eval_merged"] is True and got["seq_eval_training"] is False, f"{label} after nn.Sequential(layer).eval()",
                   f"merged={got['seq_eval_merged']!r}, training={got['seq_eval_training']!r}",
                   hint="override train(mode): super().train(mode), then merge() when mode is False -- "
                        "model.eval() calls train(False) on every submodule, not eval()")
            expect_close(got["seq_eval_w"], merged_w, f"{label}.base.weight after .eval()", atol=1e-5, rtol=1e-5)
            expect_close(got["seq_eval_out"], got["out"], f"{label}(x) after .eval()", atol=1e-5, rtol=1e-4)
            expect(got["seq_train_merged"] is False and got["seq_train_training"] is True,
                   f"{label} after nn.Sequential(layer).train()",
                   f"merged={got['seq_train_merged']!r}, training={got['seq_train_training']!r}",
                   hint="train(True) unmerges")
            expect_close(got["seq_train_w"], w, f"{label}.base.weight after .eval() then .train()", atol=1e-5, rtol=1e-5)
        with checks.case(f"{label}: layer.eval() and layer.train() return the layer"):
            expect(got["eval_returns_self"] and got["train_returns_self"], f"{label}.eval() / .train()",
                   "do not return the layer itself", hint="train(mode) must `return self` (eval() returns train(False))")
            expect(got["eval_merged"] is True and got["train_merged"] is False, f"{label}.eval() / .train()",
                   "do not merge / unmerge")
            expect_close(got["final_w"], w, f"{label}.base.weight after eval() then train()", atol=1e-5, rtol=1e-5)
    return checks


@graded(points=1, timeout=20)
def test_lora_linear_dropout(student):
    """LoRALinear dropout: on the input of the low-rank path only, with the given probability (train mode)"""
    g = student.rng()
    checks = Checks()
    d = 8
    for p in (0.0, (0.3, 0.5)[randint(g, 0, 1)]):
        r, alpha = d, float(randint(g, 4, 24))
        w, b = _base(g, d, d)
        Q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0].float()  # B: orthogonal
        A = torch.eye(d)
        x = (torch.rand(128, d, generator=g) + 0.5) * torch.sign(torch.randn(128, d, generator=g))  # |x| >= 0.5
        label = f"LoRALinear(nn.Linear(8, 8), r=8, alpha={alpha:g}, dropout={p:g}) in train mode with A = I"
        with checks.case(label):
            got = student.probe("lora_dropout", weight=w, bias=b, A=A, B=Q, r=r, alpha=alpha, p=p, x=x)
            _expect_shapes(got, A, Q, label)
            expect(got["training"], label, "is not in train mode after __init__", hint="nn.Module starts in train mode")
            # out = base(x) + dropout(x) @ Q^T * s  =>  z = (out - base(x)) / s @ Q = dropout(x): 0 or x / (1 - p)
            z = ((got["out"].double() - F.linear(x, w, b).double()) / (alpha / r)) @ Q.double()
            kept = (z - x.double() / (1 - p)).abs() <= 1e-3 * (1 + x.double().abs() / (1 - p))
            dropped = z.abs() <= 1e-3
            hint = ("apply self.dropout to the input of the low-rank path only: base(x) + (self.dropout(x) @ A^T @ B^T) * "
                    "scaling, with nn.Dropout(dropout) (it scales kept values by 1 / (1 - p))")
            expect(bool((kept | dropped).all()), f"{label}, x of shape {tuple(x.shape)}",
                   f"the low-rank path did not see dropout(x) (0 or x / (1 - p) per input value) at "
                   f"{int((~(kept | dropped)).sum())} of {z.numel()} values", hint=hint)
            frac = float((dropped & ~kept).double().mean())
            sd = math.sqrt(max(p * (1 - p), 1e-4) / z.numel())
            expect(abs(frac - p) <= 5 * sd + 1e-9, label, f"dropped {frac:.1%} of the inputs, expected about {p:.0%}",
                   hint=hint)
    return checks


# ---- A.2 inject_lora -----------------------------------------------------------------------------------------------

def _inject_cases(g):
    perm = torch.randperm(len(ALL), generator=g).tolist()
    seed = randint(g, 0, 10_000)
    ids = torch.randint(0, 256, (1, 9), generator=g)
    return [("tiny Llama, targets ('q_proj', 'v_proj')", "llama", seed, ("q_proj", "v_proj"), ids),
            ("tiny Llama, all seven projections in a shuffled order", "llama", seed + 1, [ALL[i] for i in perm], ids),
            ("tiny Llama, targets ('down_proj', 'o_proj')", "llama", seed + 2, ("down_proj", "o_proj"), ids),
            ("a model with near-miss names (top-level q_proj, ModuleDicts, q_proj_ext, kq_proj, up_proj_stack, "
             "a v_proj that is an nn.Sequential)", "toy", seed, ["q_proj", "up_proj", "v_proj"], None)]


@graded(points=2, timeout=30)
def test_inject_lora(student):
    """inject_lora: replaces exactly the nn.Linear children with a target name, returns their names in named_modules order"""
    g = student.rng()
    checks = Checks()
    for label, kind, seed, targets, ids in _inject_cases(g):
        with checks.case(label):
            r = randint(g, 1, 4)
            got = student.probe("inject", kind=kind, seed=seed, targets=targets, r=r, alpha=2.0 * r, dropout=0.0, ids=ids)
            want = ref.inject_lora(P._model(kind, seed), targets, r=r, alpha=2.0 * r)
            expect_equal(got["names"], want, f"inject_lora({label}) return value",
                         hint="dotted names as model.named_modules() lists them, in that order (not grouped by target); "
                              "match the child's attribute name exactly, not a substring or suffix of the full name")
            expect_equal([n for n, _ in got["replaced"]], want, f"the modules that are LoRALinear after inject_lora({label})",
                         hint="replace each matching nn.Linear child with setattr(parent, child_name, LoRALinear(child, ...))")
            expect(all(info["same_base"] for _, info in got["replaced"]), f"inject_lora({label})",
                   "a LoRALinear does not wrap the very nn.Linear it replaced", hint="LoRALinear(child, r, alpha, dropout)")
            if ids is not None:
                expect_close(got["after"], got["before"], f"the logits of the {label} after inject_lora", atol=1e-5,
                             hint="with B = 0 an injected model computes what it computed before")
    return checks


@graded(points=1, timeout=20)
def test_inject_lora_options(student):
    """inject_lora: passes r, alpha and dropout to every LoRALinear; ValueError when no nn.Linear matches"""
    g = student.rng()
    checks = Checks()
    seed = randint(g, 0, 10_000)
    with checks.case("r, alpha and dropout reach every injected layer"):
        r, alpha, p = randint(g, 2, 7), float(randint(g, 3, 40)), (0.05, 0.1, 0.2)[randint(g, 0, 2)]
        targets = ("k_proj", "o_proj", "down_proj")
        got = student.probe("inject", kind="llama", seed=seed, targets=targets, r=r, alpha=alpha, dropout=p)
        want = {"r": r, "scaling": alpha / r, "dropout": p}
        expect(len(got["replaced"]) == 6, f"inject_lora(tiny Llama, {targets})", f"replaced {len(got['replaced'])} modules, expected 6")
        for name, info in got["replaced"]:
            for key, value in want.items():
                expect(isinstance(info[key], (int, float)) and math.isclose(info[key], value, rel_tol=1e-9),
                       f"{name} after inject_lora(..., r={r}, alpha={alpha:g}, dropout={p:g})",
                       f"has {key} {info[key]!r}, expected {value!r}", hint="LoRALinear(child, r, alpha, dropout)")
    for targets, why in ((("qproj",), "a target that names nothing"),
                         (("self_attn", "mlp"), "targets that name modules that are not nn.Linear")):
        with checks.case(f"ValueError for {why}"):
            err = student.probe("inject_error", kind="llama", seed=seed, targets=targets)
            expect(err is not None and err["type"] == "ValueError", f"inject_lora(tiny Llama, {targets})",
                   f"raised {err['type']}" if err else "did not raise",
                   hint="raise ValueError when nothing matched: a typo must not silently train nothing")
            expect(any(t in err["message"] for t in targets), f"the ValueError of inject_lora(tiny Llama, {targets})",
                   f"does not name the targets: {err['message'][:100]!r}", hint="name the targets in the message")
    return checks


# ---- A.3 freezing and counting -----------------------------------------------------------------------------------

def _flags(g, kind, seed, targets, r):
    """A random requires_grad flag per parameter of the adapted model (mark_only... must set every one)."""
    names = [n for n, _ in P._adapted(kind, seed, targets, r).named_parameters()]
    bits = torch.rand(len(names), generator=g) < 0.5
    return {n: bool(b) for n, b in zip(names, bits)}


def _models(g):
    seed = randint(g, 0, 10_000)
    return [("tiny Llama (tied embeddings) with LoRA on q_proj and v_proj", "llama", seed, ("q_proj", "v_proj"), randint(g, 2, 6)),
            ("tiny Llama with LoRA on every projection", "llama", seed + 1, ALL, randint(g, 1, 3)),
            ("a model with a layer named 'flora' and a tied output layer", "toy", seed, ("q_proj", "up_proj"), randint(g, 2, 4))]


@graded(points=1, timeout=20)
def test_mark_only_lora_as_trainable(student):
    """mark_only_lora_as_trainable: exactly the lora_A / lora_B parameters train, whatever the flags were before"""
    g = student.rng()
    checks = Checks()
    for label, kind, seed, targets, r in _models(g):
        with checks.case(label):
            flags = _flags(g, kind, seed, targets, r)
            got = student.probe("mark", kind=kind, seed=seed, targets=targets, r=r, flags=flags)
            model = P._adapted(kind, seed, targets, r)
            P._set_flags(model, flags)
            ref.mark_only_lora_as_trainable(model)
            want = {n: p.requires_grad for n, p in model.named_parameters()}
            wrong = sorted(n for n in want if got.get(n) != want[n])
            expect(not wrong, f"requires_grad after mark_only_lora_as_trainable({label})",
                   f"{len(wrong)} parameters are wrong, e.g. {wrong[:3]}",
                   hint="True exactly for names ending in lora_A or lora_B ('flora.weight' is not one), False for all others")
    return checks


@graded(points=1, timeout=20)
def test_count_parameters(student):
    """count_parameters: (trainable, total), each tensor once (tied embeddings), any requires_grad pattern"""
    g = student.rng()
    checks = Checks()
    seed = randint(g, 0, 10_000)
    for label, kind, seed, targets, r in [("plain tiny Llama (tied embeddings)", "llama", seed, (), 1)] + _models(g):
        with checks.case(label):
            flags = _flags(g, kind, seed, targets, r)
            got = student.probe("count", kind=kind, seed=seed, targets=targets, r=r, flags=flags)
            model = P._adapted(kind, seed, targets, r)
            P._set_flags(model, flags)
            want = ref.count_parameters(model)
            double = sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())
            expect_equal(got, want, f"count_parameters({label}) with some parameters frozen",
                         hint=diagnose(got, {"tied weights were counted twice: model.parameters() lists each tensor once":
                                             (want[0], double), "the tuple is (trainable, total)": (want[1], want[0])},
                                       default="(sum of numel of parameters with requires_grad, sum of numel of all parameters)"))
    return checks


# ---- A.4 saving and loading the adapter ---------------------------------------------------------------------------

@graded(points=1, timeout=20)
def test_lora_state_dict(student):
    """lora_state_dict: exactly the LoRA factors of state_dict(), as detached copies"""
    g = student.rng()
    checks = Checks()
    for label, kind, seed, targets, r in _models(g):
        with checks.case(label):
            got = student.probe("save_state", kind=kind, seed=seed, targets=targets, r=r)
            expect(got["type"] == "dict", f"lora_state_dict({label})", f"returned a {got['type']}, not a dict")
            want = ref.lora_state_dict(P._adapted(kind, seed, targets, r))
            expect_equal(sorted(got["keys"]), sorted(want), f"the keys of lora_state_dict({label})",
                         hint="the names in model.state_dict() that end in lora_A or lora_B ('flora.weight' does not)")
            for k, v in want.items():
                expect_equal(got["values"].get(k), v, f"lora_state_dict({label})[{k!r}]")
            expect(not got["graph"], f"lora_state_dict({label})", f"holds tensors that require grad: {got['graph'][:2]}",
                   hint="detach the tensors")
            expect(not got["aliased"], f"lora_state_dict({label})",
                   f"shares memory with the model ({got['aliased'][:2]} changed when the model did)",
                   hint="detached copies: .detach().clone()")
    return checks


def _random_lora_state(g, kind, seed, targets, r):
    model = P._adapted(kind, seed, targets, r)
    return {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items() if k.endswith(("lora_A", "lora_B"))}


@graded(points=2, timeout=20)
def test_load_lora_state_dict(student):
    """load_lora_state_dict: copies every factor in place and nothing else; KeyError / ValueError for a state that does not fit"""
    g = student.rng()
    checks = Checks()
    models = _models(g)
    for label, kind, seed, targets, r in models:
        with checks.case(f"{label}: a fitting state is copied into the same parameters, nothing else changes"):
            state = _random_lora_state(g, kind, seed, targets, r)
            got = student.probe("load_state", kind=kind, seed=seed, targets=targets, r=r, state=state)
            expect(got["error"] is None, f"load_lora_state_dict({label}, a fitting state)",
                   f"raised {got['error'] and got['error']['type']}: {got['error'] and got['error']['message'][:150]}",
                   hint="copy under torch.no_grad() (an in-place copy into a leaf that requires grad fails otherwise)")
            expect_equal(sorted(got["lora"]), sorted(state), f"LoRA factors of the model after loading ({label})")
            for k, v in state.items():
                expect_equal(got["lora"][k], v, f"{k} after load_lora_state_dict({label})")
            expect(not got["others_changed"], f"load_lora_state_dict({label})",
                   f"changed weights that are not LoRA factors: {got['others_changed'][:3]}")
            expect(got["same_objects"] and all(got["requires_grad"].values()), f"load_lora_state_dict({label})",
                   "replaced parameter objects or their requires_grad", hint="p.copy_(state[name]) in place, under no_grad")
            expect(not got["aliased"], f"load_lora_state_dict({label})",
                   f"left the model sharing memory with `state` ({got['aliased'][:2]})", hint="copy the values in")
    label, kind, seed, targets, r = models[0]
    state = _random_lora_state(g, kind, seed, targets, r)
    keys = sorted(state)
    drop, reshape = keys[randint(g, 0, len(keys) - 1)], keys[randint(g, 0, len(keys) - 1)]
    extra = drop.replace("q_proj", "k_proj") if "q_proj" in drop else drop.replace("v_proj", "k_proj")
    bad = {"a missing factor": ({k: v for k, v in state.items() if k != drop}, "KeyError"),
           "an unexpected name": ({**state, extra: state[drop].clone()}, "KeyError"),
           "a factor of another rank": ({**state, reshape: torch.randn(*[s + 1 if i == (0 if reshape.endswith("lora_A") else 1)
                                                                       else s for i, s in enumerate(state[reshape].shape)],
                                                                     generator=g)}, "ValueError")}
    for why, (bad_state, error) in bad.items():
        with checks.case(f"{error} for a state with {why}"):
            got = student.probe("load_state", kind=kind, seed=seed, targets=targets, r=r, state=bad_state)
            expect(got["error"] is not None and got["error"]["type"] == error,
                   f"load_lora_state_dict({label}, a state with {why})",
                   f"raised {got['error']['type']}" if got["error"] else "did not raise",
                   hint="strict: KeyError for missing or unexpected names, ValueError for a shape that differs")
            expect(not got["others_changed"], f"load_lora_state_dict({label}, a state with {why})",
                   f"changed weights that are not LoRA factors: {got['others_changed'][:3]}")
    return checks
