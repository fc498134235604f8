"""``Student``: the parent's handle on a submission running in the sandbox.

Hidden tests call ``student.call(name, *args)`` and ``student.probe(name, **kwargs)``. The sandbox
(a fork-server that imported torch and the submission) is started once, outside every test's clock;
each test gets a freshly forked worker. A test's limit counts the worker's CPU seconds as the kernel
reports them, with a wall-clock guard several times larger. When the guard fires while the worker was
waiting for a CPU (the machine was busy), that is the grader's problem, not the student's: the test
is run again, and if that keeps happening the result says the grader could not grade it.
"""
from __future__ import annotations

import os
import pickle
import re
import select
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .api import StudentError, StudentTimeout
from .extract import Extraction
from .protocol import MAX_FRAME, ProtocolError, decode_reply, write_frame
from .sandbox import Limits, Sandbox, as_limit, host_pid, run_delay, spawn, tree_cpu, uids, vm_size

MAX_SANDBOXES = 4  # sandboxes started per submission (a crashed fork-server is replaced) before giving up
POLL = 0.2  # seconds between two looks at the worker's CPU time


class GraderProblem(Exception):
    """The grader could not run this part (sandbox start-up failed, the machine was too busy to
    honour the limits, a grader probe failed): not the student's fault, never scored silently."""


class _Starved(GraderProblem):
    pass


def _read_exact_by(fd: int, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
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


class _Worker:
    def __init__(self, request_fd: int, reply_fd: int, pid: int | None):
        self.request_fd, self.reply_fd, self.pid = request_fd, reply_fd, pid

    def kill(self) -> None:
        for fd in (self.request_fd, self.reply_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.pid is not None:
            try:
                os.kill(self.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass


class Student:
    def __init__(self, extraction: Extraction, work_dir: Path, probes_source: str = "", seed: int = 0,
                 limits: Limits | None = None, seed_key: bytes = b""):
        self.extraction = extraction
        self.work_dir = work_dir
        self.probes_source = probes_source
        self.base_seed = seed
        self.seed_key = seed_key  # secret + submission hash: inputs differ per submission
        self.limits = limits or Limits()
        self.test_name = ""
        self.cpu_limit = float("inf")  # CPU seconds left to the current test
        self._sandbox: Sandbox | None = None
        self._server_pid: int | None = None
        self._worker: _Worker | None = None
        self._import_error: str | None = None
        self._memory_budget: int | None = None
        self.sandboxes = 0
        self.sandboxed: bool | None = None
        self.startup_seconds = 0.0  # wall time the grader spent starting sandboxes
        self.import_cpu_seconds = 0.0
        self.worker_cpu_seconds = 0.0
        self.probe_errors: list[str] = []  # tests in which a grader probe raised (listed for review)
        (work_dir / "submission.py").write_text(extraction.source, encoding="utf-8")

    # -- what tests use --------------------------------------------------------------------------
    def _seed_for(self, salt: str) -> int:
        import hashlib

        h = hashlib.sha256(self.seed_key + f"|{self.base_seed}|{self.test_name}|{salt}".encode()).digest()
        return int.from_bytes(h[:8], "big") % 2**63

    def rng(self) -> torch.Generator:
        """A generator seeded from the grading secret, the submission and the current test's name
        (deterministic for one submission; another submission gets other inputs)."""
        return torch.Generator().manual_seed(self._seed_for("rng"))

    def has(self, name: str) -> bool:
        """Whether the submission defines ``name`` at top level."""
        return name in self.extraction.defined

    def call(self, name: str, *args, **kwargs):
        """Call the submission's top-level ``name(*args, **kwargs)`` in the sandbox."""
        return self._request({"op": "call", "name": name, "args": args, "kwargs": kwargs}, name)

    def probe(self, name: str, **kwargs):
        """Run the grader probe ``name(ns, **kwargs)`` in the sandbox (``ns`` = the submission)."""
        return self._request({"op": "probe", "name": name, "kwargs": kwargs}, None)

    @contextmanager
    def memory_budget(self, megabytes: float):
        """Requests inside run in a fresh worker whose address space may grow by at most
        ``megabytes`` (a limit the parent sets from outside; the student's code cannot lift it).
        Exceeding it makes the request fail with a StudentError that says so."""
        self._drop_worker()
        self._memory_budget = int(megabytes * 2**20)
        try:
            yield
        finally:
            self._memory_budget = None
            self._drop_worker()

    # -- the test's lifecycle (runner) -------------------------------------------------------------
    def begin_test(self, name: str, cpu_limit: float) -> None:
        self.test_name = name
        self.cpu_limit = cpu_limit
        self._drop_worker()

    def end_test(self) -> None:
        self.cpu_limit = float("inf")
        self._drop_worker()

    def ensure_started(self) -> None:
        """Start the sandbox and import the submission (outside any test's clock)."""
        if self._sandbox is None:
            self._start_sandbox()

    # -- machinery --------------------------------------------------------------------------------
    def _start_sandbox(self) -> None:
        if self._import_error:
            raise StudentError(self._import_error)
        if self.sandboxes >= MAX_SANDBOXES:
            raise StudentError("grading stopped calling your code: it crashed the grading process too many times")
        self.sandboxes += 1
        t0 = time.monotonic()
        try:
            sb = spawn(self.work_dir, self.limits)
        except OSError as e:
            raise GraderProblem(f"the sandbox could not be started ({e})") from None
        self.sandboxed = sb.sandboxed
        try:
            ready = self._control_reply(sb, t0 + self.limits.startup_seconds)
        except (TimeoutError, EOFError, ProtocolError, OSError) as e:
            tail = sb.output_tail(600)
            sb.kill()
            raise GraderProblem(f"the sandbox did not start within {self.limits.startup_seconds:.0f} s "
                                f"({type(e).__name__}); output: {tail[-400:]}") from None
        if ready.get("value") != "ready":
            sb.kill()
            raise GraderProblem("the sandbox started but did not report ready")
        self._server_pid = sb.server_pid()
        if sb.expect_uid is not None and uids(self._server_pid or -1) != [sb.expect_uid] * 4:
            sb.kill()
            raise GraderProblem("the sandboxed process did not drop its privileges")
        self.startup_seconds += time.monotonic() - t0
        path = "/submission/submission.py" if sb.sandboxed else str(self.work_dir / "submission.py")
        try:
            self._control_send(sb, {"op": "load", "path": path, "probes": self.probes_source})
            reply = self._await(sb.control.fileno(), self._server_pid, self.limits.import_seconds,
                                lambda deadline: self._control_reply(sb, deadline), what="import")
        except StudentTimeout:
            sb.kill()
            self._import_error = (f"importing your code did not finish within {self.limits.import_seconds:.0f} "
                                  "CPU seconds (an infinite loop or heavy work at the top level of a cell?)")
            raise StudentTimeout(self._import_error) from None
        except _Starved:
            sb.kill()
            raise
        except (EOFError, ProtocolError, OSError):
            tail = sb.output_tail(600)
            sb.kill()
            self._import_error = ("the grading process died while importing your code (os._exit, a crash, "
                                  "or a memory/process limit)" + (f"; its last output:\n{tail[-400:]}" if tail else ""))
            raise StudentError(self._import_error) from None
        self.import_cpu_seconds = self._last_cpu
        if not reply["ok"]:
            sb.kill()
            self._import_error = "importing your code failed: " + self._format_error(reply["error"], "the import")
            raise StudentError(self._import_error)
        self._sandbox = sb

    def _control_send(self, sb: Sandbox, msg: dict, fds: list[int] | None = None) -> None:
        data = pickle.dumps(msg)
        frame = len(data).to_bytes(8, "big") + data
        if fds:
            socket.send_fds(sb.control, [frame], fds)
        else:
            sb.control.sendall(frame)

    def _control_reply(self, sb: Sandbox, deadline: float) -> dict:
        return decode_reply(_read_frame_by(sb.control.fileno(), deadline))

    def _new_worker(self) -> _Worker:
        if self._sandbox is None:
            self._start_sandbox()
        sb = self._sandbox
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        budget = self._memory_budget
        try:
            self._control_send(sb, {"op": "spawn", "memory_budget": budget}, [req_r, rep_w])
            reply = self._control_reply(sb, time.monotonic() + 120)
            inner = reply.get("value") if reply.get("ok") else None
            if type(inner) is not int:
                raise ProtocolError("no worker pid")
        except (TimeoutError, EOFError, ProtocolError, OSError):
            for fd in (req_w, rep_r):
                os.close(fd)
            self._drop_sandbox()  # student code broke the fork-server: start a new one
            return self._new_worker()
        finally:
            os.close(req_r)
            os.close(rep_w)
        pid = inner if not sb.sandboxed else host_pid(sb.proc.pid, inner)
        worker = _Worker(req_w, rep_r, pid)
        try:
            hello = decode_reply(_read_frame_by(rep_r, time.monotonic() + 120))
        except (TimeoutError, EOFError, ProtocolError, OSError):
            hello = {}
        if hello.get("value") != "worker":
            worker.kill()
            raise StudentError("a fresh process for this test did not start (your code broke the grading process)")
        if budget is not None:
            # Read from the kernel: the hard address-space limit the worker runs under.
            limit, size = (as_limit(pid), vm_size(pid)) if pid else (None, None)
            if limit is None or size is None or limit > size + budget + 16 * 2**20:
                worker.kill()
                raise StudentError("the grader could not apply this test's memory budget (did your code change "
                                   "resource limits?)")
        return worker

    def _await(self, fd: int, pid: int | None, cpu_limit: float, read, what: str):
        """Wait for a reply on ``fd`` while the process ``pid`` (and its descendants) uses at most
        ``cpu_limit`` CPU seconds; a wall-clock guard catches sleeping or starved processes."""
        start = time.monotonic()
        cpu0 = tree_cpu(pid) if pid else 0.0
        delay0 = run_delay(pid) if pid else 0.0
        guard = self.limits.wall_guard(min(cpu_limit, 3600.0))
        self._last_cpu = 0.0
        while True:
            ready = select.select([fd], [], [], POLL)[0]
            cpu = (tree_cpu(pid) - cpu0) if pid else 0.0
            self._last_cpu = max(self._last_cpu, cpu)
            if ready:
                return read(time.monotonic() + max(5.0, guard - (time.monotonic() - start)))
            if cpu > cpu_limit:
                raise StudentTimeout(what)
            wall = time.monotonic() - start
            if wall > guard:
                waited = (run_delay(pid) - delay0) if pid else 0.0
                if waited > 0.5 * wall or (pid and cpu + waited > 0.9 * wall and cpu < cpu_limit):
                    raise _Starved(f"the machine was too busy: {what} waited {waited:.0f} s of {wall:.0f} s "
                                   "for a CPU")
                raise StudentTimeout(what)

    def _request(self, msg: dict, name: str | None):
        label = f"`{name}`" if name else "your code"
        if self._worker is None:
            self._worker = self._new_worker()
        worker = self._worker
        msg["seed"] = self._seed_for("torch") % 2**32
        payload = pickle.dumps(msg)
        try:
            write_frame(worker.request_fd, payload)
            reply = self._await(worker.reply_fd, worker.pid, self.cpu_limit,
                                lambda deadline: decode_reply(_read_frame_by(worker.reply_fd, deadline)), what=label)
            used = self._last_cpu if worker.pid else 0.0
        except StudentTimeout:
            self.cpu_limit = 0.0
            self._drop_worker()
            raise StudentTimeout(f"{label} did not finish within the time limit of this test "
                                 "(an infinite loop, or far too slow?)") from None
        except _Starved:
            self._drop_worker()
            raise
        except (EOFError, ProtocolError, OSError, BrokenPipeError, TimeoutError) as e:
            tail = self._sandbox.output_tail(400) if self._sandbox else ""
            self._drop_worker()
            budget = self._memory_budget
            if budget is not None:
                why = f"the process running it died or ran out of its memory budget ({budget / 2**20:.0f} MB)"
            elif isinstance(e, ProtocolError):
                why = f"it sent an invalid reply ({e})"
            else:
                why = "the process running it died (os._exit, a crash, or a memory/process/CPU limit)"
            raise StudentError(f"running {label} failed: {why}" + (f"; last output:\n{tail[-400:]}" if tail else "")) from None
        self.cpu_limit = max(0.0, self.cpu_limit - used)
        self.worker_cpu_seconds += used
        if reply["ok"]:
            return reply["value"]
        err = reply["error"] if isinstance(reply.get("error"), dict) else {}
        budget = self._memory_budget
        if budget is not None and (err.get("type") == "MemoryError" or "allocate memory" in str(err.get("message"))):
            raise StudentError(f"{label} ran out of its memory budget of {budget / 2**20:.0f} MB (an address-space "
                               "limit the grader sets on the process)")
        if err.get("origin") == "probe" and err.get("kind") == "exception":
            # Raised by the grader's own probe code, not in a frame of the student's: most often it could
            # not use what the student's code returned or how it is called (a wrong type or signature),
            # but it may be a grader bug -- say so, and list it for the staff to review.
            self.probe_errors.append(self.test_name)
            raise StudentError(f"the grader's probe `{msg.get('name')}` failed on what your code returned or how "
                               f"it is called ({str(err.get('type'))[:100]}: {self._scrub(str(err.get('message')))}). "
                               "Check the signature and return type against the stub; if they match, this is a "
                               "grader problem: contact the course staff")
        if err.get("origin") == "grader":
            raise GraderProblem(f"the grader failed to read the result ({str(err.get('type'))[:100]})")
        raise StudentError(self._format_error(err, label))

    def _scrub(self, text: str) -> str:
        """Cap a student-controlled message and blank out anything that quotes the probes."""
        text = text[:300]
        for line in self.probes_source.splitlines():
            line = line.strip()
            if len(line) >= 12 and line in text:
                text = text.replace(line, "[grader code]")
        return re.sub(r"grader_probes|genai_course_suite\w*", "[grader]", text)

    def _format_error(self, err, name: str) -> str:
        if not isinstance(err, dict):
            return f"{name} failed"
        kind, etype, message = err.get("kind"), str(err.get("type"))[:100], self._scrub(str(err.get("message")))
        if kind == "missing":
            return (f"`{message[:100]}` is not defined in your submission. Keep the name and signature from the "
                    "stub, at the top level of a code cell.")
        if kind == "unsupported":
            return f"{name} {message}; return tensors, numbers, strings or lists/dicts of them as the docstring says"
        lines = [f"{name} raised {etype}" + (f": {message}" if message.strip() else "")]
        for entry in (err.get("trace") or [])[-4:]:
            if isinstance(entry, (list, tuple)) and len(entry) == 3:
                lineno, func, code = entry
                try:
                    where = self.extraction.where(int(lineno))
                except (TypeError, ValueError):
                    continue
                lines.append(f"    in {str(func)[:100]}() at {where}: {self._scrub(str(code)).strip()[:200]}")
        if etype == "NotImplementedError":
            lines.append("    (this part is still the stub: replace `raise NotImplementedError()` with your code)")
        if etype == "NameError":
            lines.append("    Hint: graded code may use only imports, other functions/classes and literal constants "
                         "defined at the top level of a cell -- not variables computed in other cells.")
        return "\n".join(lines)

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _drop_sandbox(self) -> None:
        self._drop_worker()
        if self._sandbox is not None:
            self._sandbox.kill()
            self._sandbox = None

    def close(self) -> None:
        self._drop_sandbox()
