"""HW3 probes: scenarios that run INSIDE the sandbox against the student's module ``ns``. They build the
student's objects from what the suite sends (weights, seeds, conversations, programs), run them and return
raw observations; every expected value is computed by the grader in the parent (the reference solution,
peft's LoRA layer). The suite imports this file too: both sides build the stand-in models the same way.

The sandbox cannot read the course's data cache, so the suite sends the SmolLM2 tokenizer itself (its
JSON and configuration, about 2 MB) and ``_tokenizer`` builds it here."""
import os
import socket

import torch
from torch import nn

import genai_course as _gc
from genai_course.grading.sandbox import run_python as _grader_run_python
from genai_course.models.llama import _tokenizer_from_meta
from transformers import LlamaForCausalLM as _Llama  # noqa: F401 - imported once by the fork-server, not per test
from transformers import PreTrainedTokenizerFast as _Fast  # noqa: F401


# ---- shared with the suite (the parent builds the same models from the same seeds) -----------------------

class _StandInLoRA(nn.Module):
    """A LoRA layer by the contract's attribute names, written by the grader: the tests of the helpers that
    only look at parameter names (freezing, counting, saving, loading) do not depend on the student's LoRALinear."""

    def __init__(self, base: nn.Linear, r: int, gen: torch.Generator):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features, generator=gen) * 0.1)
        self.lora_B = nn.Parameter(torch.randn(base.out_features, r, generator=gen) * 0.1)
        base.requires_grad_(False)

    def forward(self, x):
        return self.base(x) + x @ self.lora_A.T @ self.lora_B.T


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.ModuleDict({"q_proj": nn.Linear(6, 6), "kq_proj": nn.Linear(6, 4), "q_proj_ext": nn.Linear(6, 6)})
        self.up_proj = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(6)


class _Toy(nn.Module):
    """Names that trip the usual shortcuts: a target at the top level, targets inside a ModuleDict, names that
    contain or end with a target name, a target name on a module that is not an nn.Linear, a parameter name
    that contains "lora", and an output layer tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(6, 6)
        self.blocks = nn.ModuleList([_Block(), _Block()])
        self.up_proj_stack = nn.Sequential(nn.Linear(6, 6), nn.ReLU())
        self.v_proj = nn.Sequential(nn.Linear(6, 6))
        self.flora = nn.Linear(6, 3)
        self.embed = nn.Embedding(10, 6)
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.embed.weight


def _model(kind: str, seed: int) -> nn.Module:
    if kind == "llama":
        return _gc.models.tiny_llama(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _Toy()


def _adapted(kind: str, seed: int, targets, r: int) -> nn.Module:
    """The model with the grader's stand-in LoRA layers on every nn.Linear named in ``targets``."""
    model = _model(kind, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for _, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, _StandInLoRA(child, r, gen))
    return model


def _set_flags(model: nn.Module, flags: dict) -> None:
    for name, p in model.named_parameters():
        if name in flags:
            p.requires_grad_(bool(flags[name]))


# ---- helpers -----------------------------------------------------------------------------------------------

def _linear(weight, bias):
    out_f, in_f = weight.shape
    layer = nn.Linear(in_f, out_f, bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _safe(v):
    """A student-provided attribute as a plain value (numbers and bools as themselves, else its type name)."""
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return f"<{type(v).__name__}>"


def _factor(layer, name):
    f = getattr(layer, name, None)
    return {"value": f.detach().clone() if isinstance(f, torch.Tensor) else None,
            "is_parameter": isinstance(f, nn.Parameter), "requires_grad": bool(getattr(f, "requires_grad", False))}


def _grad(p):
    g = getattr(p, "grad", None)
    return None if g is None else g.detach().clone()


def _with_factors(layer, A, B):
    """Put the grader's A and B into the student's layer; the shapes the layer has (A, B)."""
    shapes = [list(getattr(getattr(layer, n, None), "shape", [])) for n in ("lora_A", "lora_B")]
    if shapes == [list(A.shape), list(B.shape)]:
        with torch.no_grad():
            layer.lora_A.copy_(A)
            layer.lora_B.copy_(B)
    return shapes


def _error_name(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the student's exception is the observation
        return {"type": "ValueError" if isinstance(e, ValueError) else "KeyError" if isinstance(e, KeyError)
                else type(e).__name__, "message": str(e)[:200]}
    return None


def call_error(ns, fn, args=(), kwargs=None):
    """What calling the student's ``fn`` raises (None when it returns)."""
    return _error_name(lambda: getattr(ns, fn)(*args, **(kwargs or {})))


# ---- Part A ------------------------------------------------------------------------------------------------

def lora_init(ns, weight, bias, r, alpha, x):
    base = _linear(weight, bias)
    layer = ns.LoRALinear(base, r=r, alpha=alpha)
    out = layer(x)
    return {"A": _factor(layer, "lora_A"), "B": _factor(layer, "lora_B"), "same_base": getattr(layer, "base", None) is base,
            "base_requires_grad": [bool(p.requires_grad) for p in base.parameters()],
            "trainable": sorted(n for n, p in layer.named_parameters() if p.requires_grad),
            "scaling": _safe(getattr(layer, "scaling", None)), "merged": _safe(getattr(layer, "merged", None)),
            "out": out.detach()}


def lora_bad_rank(ns, r):
    return _error_name(lambda: ns.LoRALinear(nn.Linear(5, 3), r=r, alpha=4.0))


def lora_forward(ns, weight, bias, A, B, r, alpha, x, grad_out):
    base = _linear(weight, bias)
    layer = ns.LoRALinear(base, r=r, alpha=alpha)
    shapes = _with_factors(layer, A, B)
    if shapes != [list(A.shape), list(B.shape)]:
        return {"shapes": shapes}
    out = layer(x)
    (out * grad_out).sum().backward()
    return {"shapes": shapes, "out": out.detach(), "grad_A": _grad(layer.lora_A), "grad_B": _grad(layer.lora_B),
            "base_grads": [_grad(p) is not None for p in base.parameters()]}


def lora_merge(ns, weight, bias, A, B, r, alpha, x):
    base = _linear(weight, bias)
    layer = ns.LoRALinear(base, r=r, alpha=alpha)
    shapes = _with_factors(layer, A, B)
    if shapes != [list(A.shape), list(B.shape)]:
        return {"shapes": shapes}
    w = lambda: base.weight.detach().clone()  # noqa: E731
    merged = lambda: _safe(getattr(layer, "merged", None))  # noqa: E731
    with torch.no_grad():
        obs = {"shapes": shapes, "out": layer(x)}
        layer.merge()
        obs.update(merge_merged=merged(), merge_w=w(), merge_out=layer(x))
        layer.merge()
        obs.update(merge2_w=w(), merge2_out=layer(x))
        layer.unmerge()
        obs.update(unmerge_merged=merged(), unmerge_w=w(), unmerge_out=layer(x))
        layer.unmerge()
        obs.update(unmerge2_w=w())
        wrapper = nn.Sequential(layer)
        wrapper.eval()  # nn.Module.eval() -> train(False) on every submodule
        obs.update(seq_eval_merged=merged(), seq_eval_training=bool(layer.training), seq_eval_w=w(), seq_eval_out=layer(x))
        wrapper.train()
        obs.update(seq_train_merged=merged(), seq_train_training=bool(layer.training), seq_train_w=w(),
                   seq_train_out=layer(x))
        returned = layer.eval()
        obs.update(eval_returns_self=returned is layer, eval_merged=merged())
        returned = layer.train()
        obs.update(train_returns_self=returned is layer, train_merged=merged(), final_w=w())
    return obs


def lora_dropout(ns, weight, bias, A, B, r, alpha, p, x):
    base = _linear(weight, bias)
    layer = ns.LoRALinear(base, r=r, alpha=alpha, dropout=p)
    shapes = _with_factors(layer, A, B)
    if shapes != [list(A.shape), list(B.shape)]:
        return {"shapes": shapes}
    with torch.no_grad():
        return {"shapes": shapes, "training": bool(layer.training), "out": layer(x)}


def inject(ns, kind, seed, targets, r, alpha, dropout, ids=None):
    model = _model(kind, seed)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    with torch.no_grad():
        before = model(ids).logits if ids is not None else None
    names = ns.inject_lora(model, targets, r=r, alpha=alpha, dropout=dropout)
    cls = getattr(ns, "LoRALinear", None)
    replaced = []
    for name, m in model.named_modules():
        if isinstance(cls, type) and isinstance(m, cls):
            A = getattr(m, "lora_A", None)
            replaced.append([name, {"r": int(A.shape[0]) if isinstance(A, torch.Tensor) and A.dim() == 2 else None,
                                    "scaling": _safe(getattr(m, "scaling", None)),
                                    "dropout": _safe(getattr(getattr(m, "dropout", None), "p", 0.0)),
                                    "same_base": getattr(m, "base", None) is linears.get(name)}])
    with torch.no_grad():
        after = model(ids).logits if ids is not None else None
    return {"names": list(names) if isinstance(names, (list, tuple)) else f"<{type(names).__name__}>",
            "replaced": replaced, "before": before, "after": after}


def inject_error(ns, kind, seed, targets):
    return _error_name(lambda: ns.inject_lora(_model(kind, seed), targets, r=2, alpha=4.0))


def mark(ns, kind, seed, targets, r, flags):
    model = _adapted(kind, seed, targets, r)
    _set_flags(model, flags)
    ns.mark_only_lora_as_trainable(model)
    return {name: bool(p.requires_grad) for name, p in model.named_parameters()}


def count(ns, kind, seed, targets, r, flags):
    model = _adapted(kind, seed, targets, r)
    _set_flags(model, flags)
    return ns.count_parameters(model)


def save_state(ns, kind, seed, targets, r):
    model = _adapted(kind, seed, targets, r)
    state = ns.lora_state_dict(model)
    if not isinstance(state, dict):
        return {"type": type(state).__name__}
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    values = {k: v.detach().clone() for k, v in tensors.items()}
    graph = sorted(k for k, v in tensors.items() if v.requires_grad or v.grad_fn is not None)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    aliased = sorted(k for k, v in tensors.items() if not torch.equal(v, values[k]))
    return {"type": "dict", "keys": [str(k) for k in state], "values": values, "graph": graph, "aliased": aliased}


def load_state(ns, kind, seed, targets, r, state):
    model = _adapted(kind, seed, targets, r)
    params = dict(model.named_parameters())
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sent = {k: v.clone() for k, v in state.items()}
    error = _error_name(lambda: ns.load_lora_state_dict(model, sent))
    now = dict(model.named_parameters())
    is_lora = lambda k: k.endswith(("lora_A", "lora_B"))  # noqa: E731
    after = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for v in sent.values():
            v.add_(1.0)
    return {"error": error, "lora": {k: v for k, v in after.items() if is_lora(k)},
            "others_changed": sorted(k for k in before if not is_lora(k) and (k not in after or not torch.equal(after[k], before[k]))),
            "same_objects": sorted(k for k in params if now.get(k) is params[k]) == sorted(params),
            "requires_grad": {k: bool(p.requires_grad) for k, p in now.items() if is_lora(k)},
            "aliased": sorted(k for k, p in now.items() if is_lora(k) and not torch.equal(p.detach(), after[k]))}


# ---- Part B ------------------------------------------------------------------------------------------------

def _tokenizer(meta):
    return _tokenizer_from_meta(meta)


def sft_examples(ns, meta, cases):
    """build_sft_example for each (messages, max_len); an exception is reported per case."""
    tok = _tokenizer(meta)
    out = []
    for messages, max_len in cases:
        try:
            ex = ns.build_sft_example([dict(m) for m in messages], tok, max_len)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which names it
            out.append({"error": f"{type(e).__name__}: {str(e)[:200]}"})
            continue
        if not isinstance(ex, dict):
            out.append({"error": f"returned a {type(ex).__name__}, not a dict"})
            continue
        out.append({k: ex.get(k) for k in ("input_ids", "labels", "attention_mask")} | {"keys": sorted(map(str, ex))})
    return out


# ---- Part C ------------------------------------------------------------------------------------------------

def _arena(tag):
    """A listening socket and a file name the hostile program will try to reach and leave behind."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.setblocking(False)
    return srv, f"hw3-{tag}-{os.getpid()}"


def _touched(srv, marker):
    places = ["/tmp", "/dev/shm", os.path.expanduser("~"), os.getcwd()]
    files = sorted({p for p in places if os.path.exists(os.path.join(p, marker))})
    connections = 0
    while True:
        try:
            conn, _ = srv.accept()
        except (BlockingIOError, OSError):
            break
        conn.close()
        connections += 1
    srv.close()
    return {"files": files, "connections": connections}


def _fill(text, srv, marker):
    return text.replace("{MARKER}", marker).replace("{PORT}", str(srv.getsockname()[1]))


def pass_hostile(ns, problems, completions, timeout, hostile):
    """The student's pass_at_1 where the completions at indices ``hostile`` try to leave a file behind and to
    reach a socket of this process; then what got through. The control: the same hostile programs run by the
    grader's own run_python here (what run_python isolates in this sandbox: everything, where bwrap nests)."""
    srv, marker = _arena("student")
    score = ns.pass_at_1(problems, [_fill(c, srv, marker) for c in completions], timeout=timeout)
    student = _touched(srv, marker)
    srv, marker = _arena("control")
    statuses = [_grader_run_python(_fill(completions[i], srv, marker) + "\n\n" + "\n".join(problems[i]["tests"]) + "\n",
                                   timeout=timeout).status for i in hostile]
    return {"score": _safe(score), "student": student, "control": _touched(srv, marker), "control_statuses": statuses}
