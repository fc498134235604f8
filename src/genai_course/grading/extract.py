"""Turn a submission (a notebook or a .py file) into the module that is graded.

Only definitions are graded, never training runs: from every code cell we keep the top-level
``import`` statements, function and class definitions, and assignments of literal constants
(``MAX_LEN = 60``). Everything else -- loops, prints, plots, training -- is dropped. Shell and
magic lines (``!pip ...``, ``%matplotlib``) are blanked first. A cell that does not parse is
skipped with a message naming it, and the rest still counts.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_SUBMISSION_BYTES = 20 * 1024 * 1024


class SubmissionError(Exception):
    """The submission cannot be graded at all (unreadable, not a notebook, no code)."""


@dataclass
class Extraction:
    source: str  # the module to import
    defined: list[str]  # top-level names it defines, in order
    problems: list[str] = field(default_factory=list)  # cells or statements that were skipped
    origins: list[str] = field(default_factory=list)  # for each line of `source`: "cell 7, line 3"

    def where(self, lineno: int) -> str:
        """Where line ``lineno`` (1-based) of the extracted module came from."""
        if 1 <= lineno <= len(self.origins):
            return self.origins[lineno - 1]
        return f"line {lineno}"


def _blank_magics(src: str) -> str:
    lines = []
    for line in src.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            indent = line[: len(line) - len(stripped)]
            lines.append(f"{indent}pass" if indent else "")
        else:
            lines.append(line)
    return "\n".join(lines)


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def _is_name_target(t: ast.AST) -> bool:
    """``X`` or ``X, Y`` (plain names only)."""
    return isinstance(t, ast.Name) or (isinstance(t, ast.Tuple) and all(isinstance(e, ast.Name) for e in t.elts))


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign):
        return all(_is_name_target(t) for t in node.targets) and _is_literal(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _is_literal(node.value)
    return False


def _names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ([t] if isinstance(t, ast.Name) else t.elts)]
    if isinstance(node, ast.AnnAssign):
        return [node.target.id]
    return [(a.asname or a.name).split(".")[0] for a in node.names]


def extract_cells(cells: list[tuple[str, str]]) -> Extraction:
    """``cells`` are (label, source) pairs, e.g. ("cell 7", "def f(): ...")."""
    out_lines: list[str] = []
    origins: list[str] = []
    defined: list[str] = []
    problems: list[str] = []
    for label, raw in cells:
        src = _blank_magics(raw)
        try:
            tree = ast.parse(src)
        except SyntaxError as e:
            problems.append(f"{label} was skipped: syntax error at line {e.lineno}: {e.msg}")
            continue
        except (ValueError, RecursionError, MemoryError) as e:
            problems.append(f"{label} was skipped: it could not be parsed ({type(e).__name__})")
            continue
        lines = src.splitlines()
        for node in tree.body:
            if not _keep(node):
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            for i in range(first, node.end_lineno + 1):
                out_lines.append(lines[i - 1])
                origins.append(f"{label}, line {i}")
            for name in _names(node):
                if name not in defined:
                    defined.append(name)
    return Extraction(source="\n".join(out_lines) + "\n", defined=defined, problems=problems, origins=origins)


def display_name(path: Path) -> str:
    """A file name safe to print: undecodable bytes and control characters escaped, at most 80 chars."""
    name = os.fsencode(path.name).decode("utf-8", "backslashreplace")
    name = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return name if len(name) <= 80 else name[:77] + "..."


def read_submission(path: Path) -> bytes:
    """The bytes of a submission file: a regular file (never a symbolic link, device or FIFO), read
    with a size cap before anything else looks at it."""
    path = Path(path)
    name = display_name(path)
    try:
        st = os.lstat(path)
    except OSError as e:
        raise SubmissionError(f"cannot read {name}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise SubmissionError(f"{name} is a symbolic link; submit the notebook file itself")
    if not stat.S_ISREG(st.st_mode):
        raise SubmissionError(f"{name} is not a regular file; submit the notebook file itself")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise SubmissionError(f"cannot read {name}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SubmissionError(f"{name} is not a regular file; submit the notebook file itself")
        raw = f.read(MAX_SUBMISSION_BYTES + 1)
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{name} is larger than {MAX_SUBMISSION_BYTES // 2**20} MB; clear the outputs and "
                              "resubmit")
    return raw


def submission_sha256(path: Path) -> str | None:
    """Content hash of a submission file (None when it cannot be read as one)."""
    try:
        return hashlib.sha256(read_submission(path)).hexdigest()
    except SubmissionError:
        return None


def _grade_id(cell: dict) -> str | None:
    meta = cell.get("metadata")
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
    return gid[:80] if isinstance(gid, str) else None


def read_notebook_cells(path: Path, raw: bytes | None = None) -> list[tuple[str, str]]:
    raw = read_submission(path) if raw is None else raw
    name = display_name(Path(path))
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SubmissionError(f"{name} is not a valid notebook (not JSON: {str(e)[:100]}). "
                              "Re-download it from Jupyter with File > Save, or submit a .py file.") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise SubmissionError(f"{name} is not a notebook: it has no list of cells")
    out = []
    code_no = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        code_no += 1
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str):
            continue
        gid = _grade_id(cell)
        out.append((f"code cell {code_no}" + (f" ({gid})" if gid else ""), src))
    if not out:
        raise SubmissionError(f"{name} has no code cells")
    return out


def extract(path: str | Path) -> Extraction:
    """Extract the graded definitions of a ``.ipynb`` or ``.py`` submission."""
    path = Path(path)
    if path.suffix == ".ipynb":
        return extract_cells(read_notebook_cells(path))
    if path.suffix == ".py":
        raw = read_submission(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SubmissionError(f"cannot read {display_name(path)}: not UTF-8 text ({e.reason})") from None
        return extract_cells([(display_name(path), text)])
    raise SubmissionError(f"{display_name(path)}: submit the homework notebook (.ipynb) or a .py file")
