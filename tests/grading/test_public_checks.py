"""The public checks (`genai-course check`) name common bugs: a planted bug, run through the same
sandboxed runner a student's `check` uses, produces a report that says which bug it looks like,
and ``diagnose`` matches tensors, numbers and containers as documented."""
from __future__ import annotations

import pytest
import torch

from genai_course.grading.api import diagnose
from genai_course.grading.check import run_check
from genai_course.grading.extract import extract
from genai_course.grading.runner import course_root

ROOT = course_root()

# (homework, edits on the extracted solution, words the report must contain)
PLANTED = {
    "attention_scaled_by_d": ("hw1", [("/ math.sqrt(q.shape[-1])  # (B, H, T, S)", "/ q.shape[-1]  # (B, H, T, S)")],
                              "scaled the scores by 1/d instead of 1/sqrt(d)"),
    "softmax_over_queries": ("hw1", [("weights = torch.softmax(scores, dim=-1)", "weights = torch.softmax(scores, dim=-2)")],
                             "softmax over the wrong axis"),
    "mask_off_by_one": ("hw1", [("return (j <= i) & (j > i - window)", "return (j <= i) & (j >= i - window)")],
                        "off by one: each query sees window + 1 keys"),
    "mlp_without_relu": ("hw0", [("nn.Linear(in_dim, hidden), nn.ReLU(),\n            nn.Linear(hidden, hidden), nn.ReLU(),",
                                  "nn.Linear(in_dim, hidden),\n            nn.Linear(hidden, hidden),")],
                         "no non-linearity"),
    "bag_mean_over_pads": ("hw0", [("return self.out(summed / mask.sum(dim=1).clamp(min=1.0))",
                                    "return self.out(self.embed(ids).mean(dim=1))")],
                           "averaged over all L positions, pads included"),
    "hole_mse_over_all_pixels": ("hw2", [("    rec = (hole * (fake - real) ** 2).sum() / hole.sum().clamp_min(1)\n",
                                          "    rec = (hole * (fake - real) ** 2).mean()\n")],
                                 "the MSE is averaged over all pixels"),
    "generator_sees_missing_pixels": ("hw2", [("torch.cat([image * mask, mask], dim=1)", "torch.cat([image, mask], dim=1)")],
                                      "the missing pixels leak in"),
    "p_sample_beta_variance": ("hw2", [("    return mean + sched.posterior_variance[t].sqrt() * noise\n",
                                        "    return mean + sched.betas[t].sqrt() * noise\n")],
                               "the noise is scaled by sqrt(beta_t)"),
    "vocab_ties_by_appearance": ("hw0", [("key=lambda kv: (-kv[1], kv[0])", "key=lambda kv: -kv[1]")],
                                 "ties are not broken alphabetically"),
    "lora_b_starts_random": ("hw3", [("        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))\n"
                                      "        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))\n"
                                      "        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))\n",
                                      "        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))\n"
                                      "        self.lora_B = nn.Parameter(torch.empty(base.out_features, r, dtype=w.dtype, device=w.device))\n"
                                      "        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))\n"
                                      "        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))\n")],
                             "B must start at zero"),
    "lora_scaling_alpha": ("hw3", [("self.r, self.alpha, self.scaling = r, alpha, alpha / r",
                                    "self.r, self.alpha, self.scaling = r, alpha, float(alpha)")],
                           "scaling is alpha / r, not alpha"),
    "sft_trains_the_header": ("hw3", [("            parts = ((piece[:start], False), (piece[start:-1], True), (piece[-1:], False))\n",
                                       "            head = len(\"<|im_start|>assistant\\n\")\n"
                                       "            parts = ((piece[:start - head], False), (piece[start - head:-1], True), (piece[-1:], False))\n")],
                              "labels include the assistant header"),
    "collate_left_padding": ("hw3", [("        out[\"input_ids\"][i, :n] = b[\"input_ids\"]\n", "        out[\"input_ids\"][i, L - n:] = b[\"input_ids\"]\n")],
                             "pad on the right"),
    "loop_counts_as_pass": ("hw3", [("run_python(program, timeout=timeout).status == \"passed\"",
                                     "run_python(program, timeout=timeout).status != \"failed\"")],
                            "the looping program must count as a failure"),
    "hw4_cross_attention_mask_inverted": ("hw4", [("scores.masked_fill(~mask.bool()[:, None, None, :]",
                                                   "scores.masked_fill(mask.bool()[:, None, None, :]")],
                                          "the mask is inverted"),
    "hw4_patch_features_channel_first": ("hw4", [(".permute(0, 2, 4, 3, 5, 1)", ".permute(0, 2, 4, 1, 3, 5)")],
                                         "patch features ordered channel-first"),
    "hw4_guidance_reversed": ("hw4", [("return eps_u + guidance_scale * (eps_c - eps_u)",
                                       "return eps_c + guidance_scale * (eps_u - eps_c)")],
                              "guidance formula reversed"),
    "hw4_x0_hat_not_clipped": ("hw4", [("z0 = ((z - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-clip, clip)",
                                        "z0 = (z - (1 - a).sqrt() * eps) / a.sqrt()")],
                               "x0_hat is not clipped"),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_public_check_names_the_planted_bug(name, tmp_path):
    assignment, edits, words = PLANTED[name]
    text = extract(ROOT / "solutions" / assignment / f"{assignment}.ipynb").source
    for old, new in edits:
        assert old in text, f"{name}: {old!r} not found in the solution"
        text = text.replace(old, new)
    path = tmp_path / f"{assignment}_{name}.py"
    path.write_text(text)
    result, report = run_check(path, assignment)
    assert any(t["score"] < t["max_score"] for t in result["tests"]), report
    assert "this looks like a known bug: " + words in report, report


def test_diagnose_matches_values_and_containers():
    cands = {"zeros": torch.zeros(2, 3), "count": 2.0, "pair": ([1.0, 2.0], torch.ones(2)), "vocab": {"a": 0}}
    assert diagnose(torch.zeros(2, 3) + 1e-7, cands) == "this looks like a known bug: zeros"
    assert diagnose(2, cands) == "this looks like a known bug: count"
    assert diagnose((torch.tensor([1.0, 2.0]).tolist(), torch.ones(2)), cands).endswith("pair")
    assert diagnose({"a": 0}, cands).endswith("vocab")
    # a shape, type or value that matches no candidate gives the default, never an exception
    assert diagnose(torch.zeros(3, 2), cands, default="generic") == "generic"
    assert diagnose("text", cands) is None
    assert diagnose(torch.tensor([float("nan")]), {"nan rows": torch.tensor([float("nan")])}).endswith("nan rows")


@pytest.mark.parametrize("assignment", ["hw0", "hw1", "hw2", "hw3", "hw4"])
def test_valid_variants_pass_every_public_check(assignment, tmp_path):
    """A correct submission written differently from the solution (the VALID_VARIANTS of the hidden
    suite's fixtures) must not fail a public check: the checks diagnose, they never demand the
    solution's layout. One batch per homework."""
    import importlib
    import json

    from genai_course.grading.batch import grade_many
    from genai_course.grading.runner import load_tests

    fixtures = importlib.import_module(f"tests.grading.fixtures.{assignment}.mutants")
    source = extract(ROOT / "solutions" / assignment / f"{assignment}.ipynb").source
    paths = []
    for name, edits in getattr(fixtures, "VALID_VARIANTS", {}).items():
        text = source
        for old, new in edits:
            text = text.replace(old, new)
        paths.append(tmp_path / f"{name}.py")
        paths[-1].write_text(text)
    checks = ROOT / "homework" / assignment / "public_checks.py"
    grade_many(load_tests([checks], f"{assignment}_public", checks.with_name("public_probes.py")), paths,
               tmp_path / "out", workers=2)
    failed = {}
    for path in paths:
        result = json.loads((tmp_path / "out" / path.stem / "results.json").read_text())
        failed.update({f"{path.stem}: {t['name']}": t["output"][:300] for t in result["tests"] if t["score"] < t["max_score"]})
    assert not failed, failed
