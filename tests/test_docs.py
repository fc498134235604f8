"""Every relative link in the course's markdown (README, docs/, the cards) points to a file that
exists, and every #anchor to a heading that exists: the README promises only what is there."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".ipynb_checkpoints", "cache", ".pytest_cache"}
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*.md")):
        rel = path.relative_to(root)
        if not SKIP_DIRS.intersection(rel.parts) and not any(p.endswith(".egg-info") for p in rel.parts):
            out.append(path)
    return out


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are examples, not links)."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in _prose(path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


def broken_links(root: Path) -> list[str]:
    """'file: target (why)' for each relative link under root that leads nowhere."""
    problems = []
    for md in markdown_files(root):
        for target in LINK.findall(_prose(md.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md
            where = f"{md.relative_to(root)}: {target}"
            if not dest.exists():
                problems.append(f"{where} (no such file)")
            elif root.resolve() not in (dest, *dest.parents):
                problems.append(f"{where} (outside the course)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where} (no heading #{anchor})")
    return problems


def test_every_relative_link_resolves():
    assert len(markdown_files(ROOT)) >= 3
    assert broken_links(ROOT) == []


def test_link_checker_catches_a_dangling_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text("# FAQ\n\n## GPUs\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/faq.md#gpus) [gone](lectures/week1.ipynb) [bad anchor](docs/faq.md#grading)\n"
        "`[in code](nowhere.md)` [web](https://example.org)\n")
    assert broken_links(tmp_path) == ["README.md: lectures/week1.ipynb (no such file)",
                                      "README.md: docs/faq.md#grading (no heading #grading)"]


def test_readme_says_what_exists():
    """Homework folders that exist are 'available' in the README; the others 'in preparation'."""
    readme = (ROOT / "README.md").read_text()
    for n in range(5):
        row = next(line for line in readme.splitlines() if line.startswith(f"| HW{n} |"))
        released = (ROOT / "homework" / f"hw{n}" / f"hw{n}.ipynb").is_file()
        assert row.rstrip().endswith("| available |" if released else "| in preparation |"), row
    has_lectures = any((ROOT / "lectures").rglob("*.ipynb"))
    lectures_row = next(line for line in readme.splitlines() if line.startswith("| `lectures/` |"))
    assert ("in preparation" in lectures_row) != has_lectures, lectures_row
