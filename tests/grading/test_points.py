"""One source for points: the hidden suite's ``@graded(points=...)``. The notebook headings state
per-part points that must equal the suite's tests of that part, the introduction states the total,
and the README (where it states points) agrees. The suite is read at run time, so moving points
between tests only needs the headings updated; a new test needs a line in PARTS."""
from __future__ import annotations

import re

import nbformat
import pytest

from genai_course.grading import hidden_suite
from genai_course.grading.runner import course_root

ROOT = course_root()

# Which heading (part label) each hidden test belongs to.
PARTS = {
    "hw0": {"test_accuracy": "A.1", "test_mlp": "A.2", "test_cnn": "A.3", "test_train_one_epoch": "A.4",
            "test_evaluate": "A.4", "test_cnn_training_gate": "A.5", "test_tokenize": "B.1", "test_build_vocab": "B.2",
            "test_encode": "B.3", "test_pad_batch": "B.3", "test_bag_of_embeddings": "B.4", "test_stronger_model": "B.5"},
    "hw1": {"test_tokenizer": "1", "test_mask": "2.1", "test_dense_attention": "2.2", "test_banded_equals_dense": "2.3",
            "test_banded_memory": "2.3", "test_rope": "3", "test_attention_layer": "4", "test_rolling_cache": "4",
            "test_transformer_block": "5", "test_language_model": "5", "test_lm_loss": "5", "test_generate": "6", "test_training_gate": "7"},
    "hw2": {"test_compose": "A.1", "test_discriminator": "A.2", "test_generator": "A.3", "test_discriminator_loss": "A.4",
            "test_generator_loss": "A.4", "test_gan_train_step": "A.5", "test_schedules": "B.1",
            "test_diffusion_schedule": "B.2", "test_q_sample": "B.3", "test_p_losses": "B.3", "test_p_sample": "B.4",
            "test_p_sample_loop": "B.4", "test_ddim_step": "B.5", "test_ddim_sample": "B.5", "test_repaint": "B.6"},
    "hw3": {"test_lora_linear_init": "A.1", "test_lora_linear_forward": "A.1", "test_lora_linear_merge": "A.1",
            "test_lora_linear_dropout": "A.1", "test_inject_lora": "A.2", "test_inject_lora_options": "A.2",
            "test_mark_only_lora_as_trainable": "A.3", "test_count_parameters": "A.3", "test_lora_state_dict": "A.4",
            "test_load_lora_state_dict": "A.4", "test_sft_input_ids": "B.1", "test_sft_labels": "B.1",
            "test_sft_truncation": "B.1", "test_collate_sft": "B.2", "test_extract_code": "C.1", "test_pass_at_1": "C.2",
            "test_pass_at_1_limits": "C.2"},
    "hw4": {"test_encode_prompts": "A.1", "test_null_condition": "A.2", "test_drop_condition": "A.2", "test_vae_loss": "B.1",
            "test_reparameterize": "B.2", "test_cross_attention": "C.1", "test_patchify": "C.2",
            "test_timestep_embedding": "C.3", "test_dit_block": "C.4", "test_cfg_noise_prediction": "D.1",
            "test_sample": "D.2", "test_clip_loss": "E.1"},
}
HEADING = re.compile(r"^#+\s+((?:[A-Z]\.)?\d+(?:\.\d+)*)\.?\s+(.*)$")
POINTS = re.compile(r"(\d+) points?\b")


def heading_points(notebook) -> dict[str, float]:
    """{part label: sum of every "(N points)" in that part's heading line} for headings that state points."""
    parts = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            m = HEADING.match(line)
            if m and POINTS.search(m.group(2)):
                assert m.group(1) not in parts, f"{notebook.name}: two headings labelled {m.group(1)}"
                parts[m.group(1)] = float(sum(int(n) for n in POINTS.findall(m.group(2))))
    return parts


def written_points(notebook) -> float:
    """Points of the hand-graded written answers (nbgrader metadata)."""
    return float(sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in nbformat.read(notebook, as_version=4).cells
                     if c.cell_type == "markdown"))


@pytest.mark.parametrize("assignment", sorted(PARTS))
@pytest.mark.parametrize("folder", ["solutions", "homework"])
def test_headings_state_the_suite_points_per_part(assignment, folder):
    suite = hidden_suite(assignment)
    unmapped = sorted(t.name for t in suite.tests if t.name not in PARTS[assignment])
    assert not unmapped, f"add the part (heading label) of {unmapped} to PARTS in {__file__}"
    want: dict[str, float] = {}
    for t in suite.tests:
        want[PARTS[assignment][t.name]] = want.get(PARTS[assignment][t.name], 0.0) + t.points
    notebook = ROOT / folder / assignment / f"{assignment}.ipynb"
    got = heading_points(notebook)
    wrong = {part: f"heading says {got.get(part, 0):g}, the suite gives {want.get(part, 0):g}"
             for part in sorted(set(got) | set(want)) if got.get(part) != want.get(part)}
    assert not wrong, f"{notebook.relative_to(ROOT)}: points per part differ: {wrong}"
    intro = nbformat.read(notebook, as_version=4).cells[0].source
    stated = [float(n) for n in re.findall(r"\*\*(\d+) points\*\*", intro)]
    assert stated == [suite.max_score, written_points(notebook)], \
        f"{notebook}: the introduction must state the code total {suite.max_score:g} and the written total"


def test_readme_points_agree_with_the_suites():
    """Any line of the README that names a homework and a number of points states its true total."""
    totals = {a: {hidden_suite(a).max_score, written_points(ROOT / "solutions" / a / f"{a}.ipynb")} for a in PARTS}
    for line in (ROOT / "README.md").read_text().splitlines():
        named = {f"hw{n}" for n in re.findall(r"\bHW(\d)\b", line, flags=re.I)} & set(totals)
        for a in named:
            for n in POINTS.findall(line):
                assert float(n) in totals[a], f"README states {n} points for {a.upper()}: {line.strip()}"
