"""HW0 quality gates: run the solution notebook in full mode (2 CPU threads) and check its figures.

    .venv/bin/python benchmarks/hw0_quality.py

Gates (issue #4): CNN test accuracy >= 98.5 % and MLP >= 97 %, each trained in <= 3 minutes;
bag of embeddings >= 72 % and the stronger text model >= 75 %; whole notebook <= 10 minutes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from run_notebook import execute, print_gates

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    seconds, m = execute(ROOT / "solutions" / "hw0" / "hw0.ipynb", "hw0")
    stronger = max(m["TextCNN_test_accuracy"], m["GRUClassifier_test_accuracy"])
    rows = [
        ("MLP test accuracy", m["mlp_test_accuracy"], ">= 0.97", m["mlp_test_accuracy"] >= 0.97),
        ("MLP training seconds", m["mlp_train_seconds"], "<= 180", m["mlp_train_seconds"] <= 180),
        ("CNN test accuracy", m["cnn_test_accuracy"], ">= 0.985", m["cnn_test_accuracy"] >= 0.985),
        ("CNN training seconds", m["cnn_train_seconds"], "<= 180", m["cnn_train_seconds"] <= 180),
        ("CNN on half the data", m["cnn_half_data_test_accuracy"], "(reported)", True),
        ("BagOfEmbeddings test accuracy", m["BagOfEmbeddings_test_accuracy"], ">= 0.72",
         m["BagOfEmbeddings_test_accuracy"] >= 0.72),
        ("TextCNN test accuracy", m["TextCNN_test_accuracy"], "(reported)", True),
        ("GRUClassifier test accuracy", m["GRUClassifier_test_accuracy"], "(reported)", True),
        ("stronger text model (best)", stronger, ">= 0.75", stronger >= 0.75),
        ("whole notebook seconds", seconds, "<= 600", seconds <= 600),
    ]
    return 0 if print_gates(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
