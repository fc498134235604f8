"""Every name the course relies on is stated in the released stub: the attribute names that the
notebook's other cells, the shipped checkpoint's state-dict keys and the probes (hidden and public)
read on the student's objects must appear in the stub (docstring or given code) of their class."""
from __future__ import annotations

import ast
import re

import nbformat
import pytest
import torch
from safetensors import safe_open

from genai_course.grading import reference
from genai_course.grading.runner import course_root

ROOT = course_root()
_BASE = set(vars(torch.nn.Module())) | set(dir(torch.nn.Module))


def stubs(assignment: str) -> dict[str, str]:
    """{class name: source of its class statement} in the released notebook."""
    out = {}
    for cell in nbformat.read(ROOT / "homework" / assignment / f"{assignment}.ipynb", as_version=4).cells:
        if cell.cell_type == "code" and "grade_id" in cell.metadata.get("nbgrader", {}):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.ClassDef):
                    out[node.name] = ast.get_source_segment(cell.source, node)
    return out


def own_attributes(obj) -> set[str]:
    """Names the object's own __init__ sets (submodules, parameters, buffers, plain attributes)."""
    names = set(vars(obj))
    if isinstance(obj, torch.nn.Module):
        names |= set(obj._modules) | set(obj._parameters) | set(obj._buffers)
    return {n for n in names - _BASE if not n.startswith("_")}


def samples(assignment: str) -> dict[str, object]:
    """Small instances of the reference classes, by the notebook variable names that hold them."""
    ref = reference(assignment)
    if assignment == "hw0":
        boe = ref.BagOfEmbeddings(20, 8, 2)
        return {"boe": boe, "_boe": boe, "mlp": ref.MLPClassifier(), "cnn": ref.CNNClassifier(),
                "textcnn": ref.TextCNN(20, 8, 2), "gru": ref.GRUClassifier(20, 8, 6, 2)}
    if assignment == "hw3":
        import genai_course as gc

        layer = ref.LoRALinear(torch.nn.Linear(6, 4), r=2, alpha=4.0)
        model = gc.models.tiny_llama(0)
        ref.inject_lora(model, ("q_proj", "v_proj"), r=2, alpha=4.0)
        return {"_lora": layer, "layer": layer, "lora": layer, "model": model, "_tiny": model,
                "_other": model, "_q": model.model.layers[0].self_attn.q_proj}
    if assignment == "hw4":
        dit = ref.DiT(**{**ref.DIT_CONFIG, "dim": 16, "depth": 2, "n_heads": 2, "context_dim": 6})
        block = dit.blocks[0]
        return {"_ca": ref.CrossAttention(8, 6, 2), "cross": block.cross, "_blk": block, "block": block, "dit": dit,
                "model": dit, "my_dit": dit}
    if assignment == "hw2":
        G, D = ref.InpaintGenerator(8), ref.Discriminator(8)
        sched = ref.DiffusionSchedule(ref.cosine_beta_schedule(10))
        return {"G": G, "_G": G, "D": D, "_D": D, "sched": sched, "_s": sched, "toy_sched": sched}
    model = ref.TransformerLM(ref.LMConfig(vocab_size=20, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, window=4))
    return {"model": model, "_lm": model, "attn": model.blocks[0].attn, "_att": model.blocks[0].attn,
            "c": model.new_cache(1)[0], "_cache": model.new_cache(1)[0], "tokenizer": ref.CharTokenizer("ab")}


def require(found: dict, obj, attr: str, where: str, classes: dict) -> None:
    if type(obj).__name__ in classes and attr in own_attributes(obj):
        found.setdefault((type(obj).__name__, attr), where)


def notebook_accesses(assignment: str, classes: dict) -> dict:
    """(class, attribute) read by the notebook's non-graded cells on the objects of ``samples``."""
    known, found = samples(assignment), {}

    def resolve(node):
        if isinstance(node, ast.Name):
            return known.get(node.id)
        if isinstance(node, ast.Attribute):
            obj = resolve(node.value)
            if obj is None:
                return None
            require(found, obj, node.attr, f"a notebook cell reads .{node.attr}", classes)
            return getattr(obj, node.attr, None)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            obj = resolve(node.value)
            try:
                return obj[node.slice.value] if obj is not None else None
            except (TypeError, IndexError, KeyError):
                return None
        return None

    for cell in nbformat.read(ROOT / "homework" / assignment / f"{assignment}.ipynb", as_version=4).cells:
        if cell.cell_type == "code" and "grade_id" not in cell.metadata.get("nbgrader", {}):
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Attribute):
                    resolve(node)
    return found


def checkpoint_names(assignment: str, classes: dict) -> dict:
    """(class, relative module path) that each key of the shipped checkpoint (if any) goes through:
    blocks.0.mlp.2.weight needs "blocks" in TransformerLM's stub and "mlp.2" in TransformerBlock's."""
    if assignment == "hw2":
        return gan_checkpoint_names(classes)
    if assignment == "hw3":
        return adapter_checkpoint_names(classes)
    ref = reference(assignment)
    if assignment == "hw4":
        path = ROOT / "data" / "checkpoints" / "hw4_dit.safetensors"
        if not path.exists():
            return {}
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
        model = ref.DiT(**ref.DIT_CONFIG)
    else:
        path = ROOT / "data" / "checkpoints" / f"{assignment}_charlm.safetensors"
        if not path.exists():
            return {}
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            vocab = f.get_slice("tok_emb.weight").get_shape()[0]
        model = ref.TransformerLM(ref.LMConfig(vocab_size=vocab))
    assert set(keys) == set(model.state_dict()), "the reference model's state-dict keys differ from the checkpoint's"
    modules = dict(model.named_modules())
    found = {}
    for key in keys:
        comps = key.split(".")
        owners = [i for i in range(len(comps)) if type(modules.get(".".join(comps[:i]))).__name__ in classes]
        for a, b in zip(owners, owners[1:] + [None]):
            rel = ".".join(comps[a:b]) if b is not None else (".".join(comps[a:-1]) or comps[-1])
            if b is not None:
                rel = re.sub(r"\.\d+$", "", rel)  # blocks.0 -> blocks: the ModuleList's own name
            found.setdefault((type(modules[".".join(comps[:a])]).__name__, rel), f"checkpoint key {key}")
    return found


def gan_checkpoint_names(classes: dict) -> dict:
    """HW2's GAN checkpoint: keys G.<path> belong to InpaintGenerator, D.<path> to Discriminator; each
    key's first component (enc1, net, ...) must be named in that class's stub."""
    path = ROOT / "data" / "checkpoints" / "hw2_gan.safetensors"
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    owner = {"G": "InpaintGenerator", "D": "Discriminator"}
    found = {}
    for key in keys:
        net, first = key.split(".")[:2]
        found.setdefault((owner[net], first), f"checkpoint key {key}")
    ref = reference("hw2")
    for net, cls in owner.items():
        expected = set(getattr(ref, cls)().state_dict())
        assert {k[2:] for k in keys if k.startswith(net + ".")} == expected, f"the checkpoint's {cls} keys differ"
    return found


def adapter_checkpoint_names(classes: dict) -> dict:
    """HW3's shipped adapters (where they exist yet): every key is <module path>.lora_A or .lora_B, attributes
    of LoRALinear that the stub must name (load_lora_state_dict matches them by name)."""
    found = {}
    for path in sorted((ROOT / "data" / "checkpoints").glob("hw3_*lora*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                found.setdefault(("LoRALinear", key.rsplit(".", 1)[-1]), f"{path.name} key {key}")
    return found


def probe_names(assignment: str, classes: dict) -> dict:
    """(class, attribute) that the hidden and public probes read by name (attribute or getattr string)."""
    instances = [o for o in samples(assignment).values()]
    if assignment in ("hw1", "hw3", "hw4"):
        instances += [m for m in samples(assignment)["model"].modules()]
    paths = [ROOT / "autograder" / assignment / "probes.py", ROOT / "solutions" / assignment / "public_probes.py"]
    if assignment == "hw3":  # the given helpers of Part D find and silence LoRA layers by the contract's names
        paths.append(ROOT / "src" / "genai_course" / "llm.py")
    found = {}
    for path in paths:
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {e.value for n in ast.walk(tree) if isinstance(n, (ast.Tuple, ast.List))
                  for e in n.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        for obj in instances:
            for attr in names & own_attributes(obj):
                require(found, obj, attr, f"{path.relative_to(ROOT)} reads .{attr}", classes)
    return found


@pytest.mark.parametrize("assignment", ["hw0", "hw1", "hw2", "hw3", "hw4"])
def test_stubs_state_every_name_the_course_reads(assignment):
    classes = stubs(assignment)
    needed = {**probe_names(assignment, classes), **checkpoint_names(assignment, classes),
              **notebook_accesses(assignment, classes)}
    assert needed, "nothing found to check"
    missing = [f"{cls}.{name} ({why})" for (cls, name), why in sorted(needed.items())
               if not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", classes[cls])]
    assert not missing, "the released stub never states these names: " + "; ".join(missing)
