"""Shared fixtures of the package's tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from genai_course.data import sources

# Notebooks under tests/ are fixtures (submissions to grade, some broken or hostile on purpose):
# the test command runs nbval over the whole run, so keep them out of notebook collection.
collect_ignore_glob = ["*.ipynb", "grading/fixtures/*"]


@pytest.fixture
def scratch_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data cache, with the already-downloaded package archives copied in (so tests do
    not touch the network), selected through $GENAI_COURSE_DATA."""
    real = sources.data_dir()
    (tmp_path / "downloads").mkdir()
    for src in sources.SOURCES.values():
        archive = real / "downloads" / src.filename
        if archive.is_file():
            shutil.copy(archive, tmp_path / "downloads" / src.filename)
    monkeypatch.setenv("GENAI_COURSE_DATA", str(tmp_path))
    return tmp_path
