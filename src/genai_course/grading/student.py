"""``Student``: the parent's handle on a submission running in the sandbox.

Hidden tests call ``student.call(name, *args)`` and ``student.probe(name, **kwargs)``. Each request
has a deadline; a child that times out, crashes or sends garbage is killed and a fresh one is
started for the next request, so one bad function costs only its own tests.
"""
from __future__ import annotations

import os
import pickle
import select
import time
import zlib
from pathlib import Path

import torch

from .api import StudentError, StudentTimeout
from .extract import Extraction
from .protocol import MAX_FRAME, ProtocolError, decode_reply, write_frame
from .sandbox import ChildProcess, Limits, spawn

MAX_RESTARTS = 8  # children started per submission before giving up


def _wait_readable(fd: int, deadline: float) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    ready, _, _ = select.select([fd], [], [], remaining)
    return bool(ready)


def _read_exact_by(fd: int, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        if not _wait_readable(fd, deadline):
            raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_frame_by(fd: int, deadline: float) -> bytes:
    size = int.from_bytes(_read_exact_by(fd, 8, deadline), "big")
    if size > MAX_FRAME:
        raise ProtocolError(f"reply of {size} bytes is too large")
    return _read_exact_by(fd, size, deadline)


class Student:
    def __init__(self, extraction: Extraction, work_dir: Path, probes_source: str = "", seed: int = 0,
                 limits: Limits | None = None):
        self.extraction = extraction
        self.work_dir = work_dir
        self.probes_source = probes_source
        self.base_seed = seed
        self.limits = limits or Limits()
        self.test_name = ""
        self.deadline = float("inf")
        self._child: ChildProcess | None = None
        self._import_error: str | None = None
        self.restarts = 0
        self.sandboxed: bool | None = None
        self.output_notes: list[str] = []
        (work_dir / "submission.py").write_text(extraction.source, encoding="utf-8")

    # -- what tests use --------------------------------------------------------------------------
    def rng(self) -> torch.Generator:
        """A generator seeded from the grading seed and the current test's name (deterministic)."""
        return torch.Generator().manual_seed((self.base_seed * 1_000_003 + zlib.crc32(self.test_name.encode())) % 2**63)

    def has(self, name: str) -> bool:
        """Whether the submission defines ``name`` at top level."""
        return name in self.extraction.defined

    def call(self, name: str, *args, **kwargs):
        """Call the submission's top-level ``name(*args, **kwargs)`` in the sandbox."""
        return self._request({"op": "call", "name": name, "args": args, "kwargs": kwargs}, name)

    def probe(self, name: str, **kwargs):
        """Run the grader probe ``name(ns, **kwargs)`` in the sandbox (``ns`` = the submission)."""
        return self._request({"op": "probe", "name": name, "kwargs": kwargs}, None)

    # -- machinery --------------------------------------------------------------------------------
    def _start(self) -> ChildProcess:
        if self._import_error:
            raise StudentError(self._import_error)
        if self.restarts >= MAX_RESTARTS:
            raise StudentError("grading stopped calling your code: it crashed or timed out too many times")
        self.restarts += 1
        child = spawn(self.work_dir, self.limits)
        self.sandboxed = child.sandboxed
        path = "/submission/submission.py" if child.sandboxed else str(self.work_dir / "submission.py")
        try:
            reply = self._exchange(child, {"op": "load", "path": path, "probes": self.probes_source},
                                   time.monotonic() + self.limits.import_seconds)
        except TimeoutError:
            child.kill()
            self._import_error = (f"importing your code did not finish within {self.limits.import_seconds:.0f} s "
                                  "(an infinite loop or heavy work at the top level of a cell?)")
            raise StudentTimeout(self._import_error) from None
        except (EOFError, ProtocolError, OSError):
            tail = child.output_tail(600)
            child.kill()
            self._import_error = ("the grading process died while importing your code (os._exit, a crash, "
                                  "or a memory/process limit)" + (f"; its last output:\n{tail}" if tail else ""))
            raise StudentError(self._import_error) from None
        if not reply["ok"]:
            child.kill()
            self._import_error = "importing your code failed: " + self._format_error(reply["error"], "the import")
            raise StudentError(self._import_error)
        return child

    def _exchange(self, child: ChildProcess, msg: dict, deadline: float) -> dict:
        write_frame(child.request_fd, pickle.dumps(msg))
        return decode_reply(_read_frame_by(child.reply_fd, deadline))

    def _request(self, msg: dict, name: str | None):
        if self._child is None:
            self._child = self._start()
        name = f"`{name}`" if name else "your code"
        msg["seed"] = zlib.crc32(f"{self.base_seed}:{self.test_name}".encode())
        child = self._child
        try:
            reply = self._exchange(child, msg, self.deadline)
        except TimeoutError:
            self._drop_child()
            raise StudentTimeout(f"{name} did not finish within the time limit of this test "
                                 "(an infinite loop, or far too slow?)") from None
        except (EOFError, ProtocolError, OSError, BrokenPipeError) as e:
            tail = self._child.output_tail(400) if self._child else ""
            self._drop_child()
            why = "it sent an invalid reply" if isinstance(e, ProtocolError) else \
                "the process running it died (os._exit, a crash, or a memory/process/CPU limit)"
            raise StudentError(f"running {name} failed: {why}" + (f"; last output:\n{tail[-400:]}" if tail else "")) from None
        if reply["ok"]:
            return reply["value"]
        raise StudentError(self._format_error(reply["error"], name))

    def _format_error(self, err, name: str) -> str:
        if not isinstance(err, dict):
            return f"{name} failed"
        kind, etype, message = err.get("kind"), str(err.get("type")), str(err.get("message"))[:1500]
        if kind == "missing":
            return (f"`{message}` is not defined in your submission. Keep the name and signature from the "
                    "stub, at the top level of a code cell.")
        if kind == "unsupported":
            return f"{name} {message}; return tensors, numbers, strings or lists/dicts of them as the docstring says"
        lines = [f"{name} raised {etype}" + (f": {message}" if message.strip() else "")]
        for entry in (err.get("trace") or [])[-4:]:
            if isinstance(entry, (list, tuple)) and len(entry) == 3:
                lineno, func, code = entry
                lines.append(f"    in {func}() at {self.extraction.where(int(lineno))}: {str(code).strip()}")
        if etype == "NotImplementedError":
            lines.append("    (this part is still the stub: replace `raise NotImplementedError()` with your code)")
        if etype == "NameError":
            lines.append("    Hint: graded code may use only imports, other functions/classes and literal constants "
                         "defined at the top level of a cell -- not variables computed in other cells.")
        return "\n".join(lines)

    def _drop_child(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def close(self) -> None:
        self._drop_child()
