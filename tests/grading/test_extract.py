"""extract: what is kept from a submission, and how broken notebooks are reported."""
from __future__ import annotations

import json

import pytest

from genai_course.grading.extract import SubmissionError, extract, extract_cells


def _nb(tmp_path, cells, name="hw0.ipynb"):
    nb = {"cells": [{"cell_type": t, "metadata": {}, "source": s} for t, s in cells], "metadata": {},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def test_keeps_definitions_and_literals_drops_the_rest():
    ex = extract_cells([("cell 1", "import torch\nfrom torch import nn as tnn\nMAX = 60\nPAD, UNK = '<pad>', '<unk>'\n"
                                   "device = torch.device('cpu')\nprint('hi')\nfor i in range(10**9):\n    pass\n"),
                        ("cell 2", "@staticmethod\ndef f(x):\n    return x + MAX\nclass A:\n    pass\nmodel = A()\n")])
    assert ex.defined == ["torch", "tnn", "MAX", "PAD", "UNK", "f", "A"]
    assert "device" not in ex.source and "print" not in ex.source and "range" not in ex.source
    assert "@staticmethod" in ex.source
    ns = {}
    exec(ex.source, ns)
    assert ns["MAX"] == 60 and ns["UNK"] == "<unk>"
    assert ex.where(ex.source.splitlines().index("def f(x):") + 1) == "cell 2, line 2"


def test_magics_are_blanked_and_syntax_errors_reported():
    ex = extract_cells([("cell 1", "%matplotlib inline\n!pip install x\nimport math\n"),
                        ("cell 2", "def broken(:\n    pass\n"),
                        ("cell 3", "def g():\n    %time 1\n    return 2\n")])
    assert ex.defined == ["math", "g"]
    assert ex.problems == ["cell 2 was skipped: syntax error at line 1: invalid syntax"]
    ns = {}
    exec(ex.source, ns)
    assert ns["g"]() == 2


def test_notebook_cells_and_labels(tmp_path):
    path = _nb(tmp_path, [("markdown", "# title"), ("code", ["def a():\n", "    return 1\n"]), ("code", "x = compute()")])
    ex = extract(path)
    assert ex.defined == ["a"] and ex.origins[0] == "code cell 1, line 1"


@pytest.mark.parametrize("content,match", [
    ("{not json", "not a valid notebook"),
    (json.dumps({"cells": "nope"}), "no list of cells"),
    (json.dumps({"cells": [{"cell_type": "markdown", "source": "hi"}]}), "no code cells"),
    (json.dumps([1, 2, 3]), "no list of cells"),
])
def test_unreadable_notebooks(tmp_path, content, match):
    path = tmp_path / "hw0.ipynb"
    path.write_text(content)
    with pytest.raises(SubmissionError, match=match):
        extract(path)


def test_other_file_types_and_missing_files(tmp_path):
    with pytest.raises(SubmissionError, match="submit the homework notebook"):
        extract(tmp_path / "hw0.pdf")
    with pytest.raises(SubmissionError, match="cannot read"):
        extract(tmp_path / "missing.ipynb")
    py = tmp_path / "sub.py"
    py.write_text("def f():\n    return 3\nf()\n")
    assert extract(py).defined == ["f"]
