"""The sandboxed side of grading: a fork-server that imports the student's module once, then
forks a fresh worker for each test.

Run as ``python -c <bootstrap> CONTROL_FD``. Over the control socket (parent -> server):

1. the server imports torch and says ``ready`` (the grader's start-up, outside every test's clock);
2. ``load``: compile the grader's probes, *drop their source*, then execute the student's module;
3. ``spawn`` with two file descriptors attached (SCM_RIGHTS): fork a worker that answers ``call``
   and ``probe`` requests on those pipes; the reply is the worker's pid in this namespace.

It holds no expected values: the parent sends inputs, the worker returns what the student's code
produced, and the parent compares. Anything the student's code does here only affects this sandbox.
"""
from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import traceback
import types

SUBMISSION_FILE = "submission.py"
PROBES_FILE = "<grader probes>"
MAX_MESSAGE = 300  # characters of a student exception's message sent back


def _student_trace(exc: BaseException, limit: int = 6) -> list[list]:
    """(line, function, code) of the frames that are in the student's module."""
    frames = []
    for fs in traceback.extract_tb(exc.__traceback__):
        if os.path.basename(fs.filename) == SUBMISSION_FILE:
            frames.append([int(fs.lineno or 0), str(fs.name)[:100], str(fs.line or "")[:200]])
    return frames[-limit:]


def _origin(exc: BaseException) -> str:
    """Where an exception came from: "student" when a frame of the student's module is on its
    traceback, "probe" when only the grader's probes (and libraries) are."""
    files = [fs.filename for fs in traceback.extract_tb(exc.__traceback__)]
    if any(os.path.basename(f) == SUBMISSION_FILE for f in files):
        return "student"
    return "probe" if PROBES_FILE in files else "student"


def _error(exc: BaseException, kind: str = "exception", submission=None) -> dict:
    if kind == "exception" and submission is not None and isinstance(exc, AttributeError) \
            and getattr(exc, "obj", None) is submission:
        return {"ok": False, "error": {"kind": "missing", "type": "NameError", "message": str(exc.name)[:100],
                                       "trace": []}}
    if isinstance(exc, SystemExit):
        message = "your code called sys.exit() / raised SystemExit"
    elif isinstance(exc, KeyboardInterrupt):
        message = "your code raised KeyboardInterrupt"
    else:
        try:
            message = str(exc)[:MAX_MESSAGE]
        except Exception:  # noqa: BLE001 - a hostile __str__
            message = "<unprintable>"
    origin = _origin(exc) if kind == "exception" else "student"
    return {"ok": False, "error": {"kind": kind, "type": type(exc).__name__[:100], "message": message,
                                   "trace": _student_trace(exc), "origin": origin}}


def _serve(req_fd: int, reply_fd: int, submission, probes: dict, memory_budget: int | None) -> None:
    """A worker: apply the memory budget, say ready, answer requests until the parent closes the pipe."""
    import resource

    import torch

    from genai_course.grading.protocol import Unsupported, encode_reply, read_frame, to_plain, write_frame

    def reply(obj: dict) -> None:
        write_frame(reply_fd, encode_reply(obj))

    if memory_budget is not None:  # the parent checks /proc/<pid>/limits before it sends anything
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + memory_budget, size + memory_budget))
    reply({"ok": True, "value": "worker"})

    while True:
        try:
            msg = pickle.loads(read_frame(req_fd))
        except (EOFError, OSError):
            return
        op = msg.get("op")
        try:
            torch.manual_seed(int(msg.get("seed", 0)))
            if op == "call":
                name = msg["name"]
                if not hasattr(submission, name):
                    reply({"ok": False, "error": {"kind": "missing", "type": "NameError", "message": name, "trace": []}})
                    continue
                result = getattr(submission, name)(*msg.get("args", ()), **msg.get("kwargs", {}))
            elif op == "probe":
                result = probes[msg["name"]](submission, **msg.get("kwargs", {}))
            else:
                raise ValueError(f"unknown op {op!r}")
            del msg
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt are student errors too
            reply(_error(exc, submission=submission))
            continue
        try:
            value = to_plain(result)
        except Unsupported as e:
            reply({"ok": False, "error": {"kind": "unsupported", "type": "TypeError",
                                          "message": f"returned {e}"[:MAX_MESSAGE], "trace": []}})
            continue
        except BaseException as exc:  # noqa: BLE001 - a result whose conversion runs student code
            reply(_error(exc))
            continue
        try:
            payload = encode_reply({"ok": True, "value": value})
        except BaseException as exc:  # noqa: BLE001 - our own encoder failed: the grader's problem
            reply({"ok": False, "error": {"kind": "exception", "type": type(exc).__name__[:100], "origin": "grader",
                                          "message": str(exc)[:MAX_MESSAGE], "trace": []}})
            continue
        write_frame(reply_fd, payload)


def _send(sock: socket.socket, obj: dict) -> None:
    from genai_course.grading.protocol import encode_reply

    data = encode_reply(obj)
    sock.sendall(len(data).to_bytes(8, "big") + data)


def _recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One pickled message from the parent, with any file descriptors attached to it."""
    head, fds, _, _ = socket.recv_fds(sock, 8, 4)
    if not head:
        return None, fds
    while len(head) < 8:
        more = sock.recv(8 - len(head))
        if not more:
            return None, fds
        head += more
    size, body = int.from_bytes(head, "big"), b""
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None, fds
        body += chunk
    return pickle.loads(body), fds


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    import torch

    import genai_course.grading.protocol  # noqa: F401 - imported before any student code runs

    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    _send(sock, {"ok": True, "value": "ready"})
    submission = None
    probes: dict = {}
    while True:
        try:
            msg, fds = _recv(sock)
        except (OSError, EOFError, pickle.UnpicklingError):
            return
        if msg is None:
            return
        op = msg.get("op")
        if op == "load":
            try:
                # The probes first, from source that is then dropped: student code never sees it.
                pmod = types.ModuleType("grader_probes")
                exec(compile(msg.pop("probes", "") or "", PROBES_FILE, "exec"), pmod.__dict__)  # noqa: S102
                probes = {k: v for k, v in vars(pmod).items() if callable(v) and not k.startswith("_")}
                del pmod
                mod = types.ModuleType("submission")
                mod.__file__ = os.path.join(os.path.dirname(msg["path"]), SUBMISSION_FILE)
                sys.modules["submission"] = mod
                with open(msg["path"], encoding="utf-8") as f:
                    code = compile(f.read(), mod.__file__, "exec")
                del msg
                exec(code, mod.__dict__)  # noqa: S102 - this is the sandbox
                submission = mod
                _send(sock, {"ok": True, "value": None})
            except BaseException as exc:  # noqa: BLE001
                _send(sock, _error(exc, "import"))
            continue
        if op == "spawn" and submission is not None and len(fds) == 2:
            pid = os.fork()
            if pid == 0:
                try:
                    sock.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    try:
                        with open("/proc/self/oom_score_adj", "w") as f:
                            f.write("1000")  # under memory pressure, the worker goes before the server
                    except OSError:
                        pass
                    _serve(fds[0], fds[1], submission, probes, msg.get("memory_budget"))
                finally:
                    os._exit(0)
            for fd in fds:
                os.close(fd)
            _send(sock, {"ok": True, "value": pid})
            continue
        for fd in fds:
            os.close(fd)
        _send(sock, {"ok": False, "error": {"kind": "protocol", "type": "RuntimeError",
                                            "message": f"cannot {op}", "trace": []}})


if __name__ == "__main__":
    main()
