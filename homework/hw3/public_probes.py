"""Public probes of HW3 (run in the sandbox by `genai-course check`): build your objects from what a check
sends and return raw outputs; every expected value is computed by the check. The sandbox cannot read the data
cache, so the checks send the SmolLM2 tokenizer (its JSON) along."""
import torch
from torch import nn

import genai_course as gc
from genai_course.models.llama import _tokenizer_from_meta
from transformers import LlamaForCausalLM as _Llama  # noqa: F401 - imported once, not in every check
from transformers import PreTrainedTokenizerFast as _Fast  # noqa: F401


def _linear(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _flag(v):
    return v if isinstance(v, bool) else f"<{type(v).__name__}>"


def lora_at_init(ns, weight, bias, r, alpha, x):
    base = _linear(weight, bias)
    layer = ns.LoRALinear(base, r=r, alpha=alpha)
    A, B = getattr(layer, "lora_A", None), getattr(layer, "lora_B", None)
    return {"A_shape": list(getattr(A, "shape", [])), "B_shape": list(getattr(B, "shape", [])),
            "B_is_zero": bool(isinstance(B, torch.Tensor) and (B == 0).all()),
            "A_max": float(A.abs().max()) if isinstance(A, torch.Tensor) and A.numel() else None,
            "trainable": sorted(n for n, p in layer.named_parameters() if p.requires_grad), "out": layer(x).detach()}


def lora_ops(ns, weight, bias, A, B, r, alpha, x):
    """The layer with the given factors: its output, then after merge() (twice), unmerge(), eval() and train()."""
    base = _linear(weight, bias)
    layer = ns.LoRALinear(base, r=r, alpha=alpha)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
        out = {"out": layer(x)}
        layer.merge()
        out.update(merged=_flag(layer.merged), merged_w=base.weight.clone(), merged_out=layer(x))
        layer.merge()
        out.update(merged_twice_w=base.weight.clone())
        layer.unmerge()
        out.update(unmerged=_flag(layer.merged), unmerged_w=base.weight.clone())
        returned = nn.Sequential(layer).eval()
        out.update(eval_merged=_flag(layer.merged), eval_returns=returned[0] is layer)
        out.update(train_returns_self=layer.train() is layer, train_merged=_flag(layer.merged))
    return out


def inject(ns, targets):
    model = gc.models.tiny_llama(0)
    names = ns.inject_lora(model, targets, r=4, alpha=8.0)
    kinds = {n: type(m).__name__ for n, m in model.named_modules() if n.endswith(("q_proj", "k_proj", "v_proj"))}
    return {"names": list(names), "kinds": kinds}


def inject_error(ns, targets):
    try:
        ns.inject_lora(gc.models.tiny_llama(0), targets)
    except Exception as e:  # noqa: BLE001
        return type(e).__name__ if not isinstance(e, ValueError) else "ValueError"
    return None


def _wrapped(ns, seed=0):
    """The tiny Llama with YOUR LoRALinear (r=4, alpha=8) on q_proj and v_proj of both layers, put in by hand."""
    model = gc.models.tiny_llama(seed)
    for layer in model.model.layers:
        layer.self_attn.q_proj = ns.LoRALinear(layer.self_attn.q_proj, r=4, alpha=8.0)
        layer.self_attn.v_proj = ns.LoRALinear(layer.self_attn.v_proj, r=4, alpha=8.0)
    return model


def trainable_and_count(ns):
    model = _wrapped(ns)
    model.model.layers[0].self_attn.q_proj.lora_A.requires_grad_(False)  # mark_only... must turn it back on
    ns.mark_only_lora_as_trainable(model)
    return {"trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
            "count": ns.count_parameters(model)}


def adapter_round_trip(ns):
    src, dst = _wrapped(ns, 0), _wrapped(ns, 1)
    with torch.no_grad():
        for name, p in src.named_parameters():
            if name.endswith("lora_B"):
                p.normal_()
    state = ns.lora_state_dict(src)
    keys = sorted(state)
    first = next(n for n, _ in src.named_parameters() if n.endswith("lora_B"))
    with torch.no_grad():
        src.get_parameter(first).add_(1.0)
    aliased = first in state and torch.equal(state[first], src.get_parameter(first).detach())
    embed = dst.model.embed_tokens.weight.clone()
    ns.load_lora_state_dict(dst, state)
    copied = all(torch.equal(dst.state_dict()[k], state[k]) for k in keys)
    errors = {}
    for label, bad in (("missing", {k: v for k, v in state.items() if k != keys[0]}),
                       ("unexpected", {**state, "model.layers.0.self_attn.k_proj.lora_A": state[keys[0]]}),
                       ("shape", {**state, keys[0]: torch.zeros(5, *state[keys[0]].shape[1:])})):
        try:
            ns.load_lora_state_dict(dst, bad)
            errors[label] = None
        except KeyError:
            errors[label] = "KeyError"
        except ValueError:
            errors[label] = "ValueError"
        except Exception as e:  # noqa: BLE001
            errors[label] = type(e).__name__
    return {"keys": keys, "requires_grad": any(v.requires_grad for v in state.values()), "aliased": aliased,
            "copied": copied, "embed_unchanged": torch.equal(embed, dst.model.embed_tokens.weight), "errors": errors}


def sft(ns, meta, messages, max_len):
    ex = ns.build_sft_example(messages, _tokenizer_from_meta(meta), max_len)
    return {k: ex[k] for k in ("input_ids", "labels", "attention_mask")}


def pass_run(ns, problems, completions, timeout):
    return ns.pass_at_1(problems, completions, timeout=timeout)
