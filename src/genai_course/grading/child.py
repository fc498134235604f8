"""The sandboxed side of grading: import the student's module, answer calls and probes.

Run as ``python -m genai_course.grading.child REQUEST_FD REPLY_FD``. It holds no expected values:
the parent sends inputs, this process returns what the student's code produced, and the parent
compares. Anything the student's code does here (exit, monkeypatch, print) only affects this process.
"""
from __future__ import annotations

import os
import pickle
import sys
import traceback
import types

SUBMISSION_FILE = "submission.py"
PROBES_FILE = "grader_probes.py"


def _student_trace(exc: BaseException, limit: int = 6) -> list[list]:
    """(line, function, code) of the frames that are in the student's module."""
    frames = []
    for fs in traceback.extract_tb(exc.__traceback__):
        if os.path.basename(fs.filename) == SUBMISSION_FILE:
            frames.append([int(fs.lineno or 0), str(fs.name), str(fs.line or "")[:200]])
    return frames[-limit:]


def _error(exc: BaseException, kind: str = "exception") -> dict:
    if isinstance(exc, SystemExit):
        message = f"your code called sys.exit({exc.code!r}) / raised SystemExit"
    elif isinstance(exc, KeyboardInterrupt):
        message = "your code raised KeyboardInterrupt"
    else:
        try:
            message = str(exc)[:2000]
        except Exception:  # noqa: BLE001 - a hostile __str__
            message = "<unprintable>"
    return {"ok": False, "error": {"kind": kind, "type": type(exc).__name__[:100], "message": message,
                                   "trace": _student_trace(exc)}}


def main() -> None:
    req_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    # Keep our own references before any student code runs.
    from genai_course.grading.protocol import Unsupported, encode_reply, read_frame, to_plain, write_frame

    import torch

    torch.set_num_threads(1)
    submission = None
    probes: dict = {}

    def reply(obj: dict) -> None:
        write_frame(reply_fd, encode_reply(obj))

    while True:
        try:
            msg = pickle.loads(read_frame(req_fd))
        except EOFError:
            return
        op = msg.get("op")
        try:
            if op == "load":
                mod = types.ModuleType("submission")
                mod.__file__ = os.path.join(os.path.dirname(msg["path"]), SUBMISSION_FILE)
                sys.modules["submission"] = mod
                code = compile(open(msg["path"], encoding="utf-8").read(), mod.__file__, "exec")
                exec(code, mod.__dict__)  # noqa: S102 - this is the sandbox
                submission = mod
                if msg.get("probes"):
                    pmod = types.ModuleType("grader_probes")
                    exec(compile(msg["probes"], PROBES_FILE, "exec"), pmod.__dict__)  # noqa: S102
                    probes = {k: v for k, v in vars(pmod).items() if callable(v) and not k.startswith("_")}
                reply({"ok": True, "value": None})
                continue
            if submission is None:
                reply({"ok": False, "error": {"kind": "protocol", "type": "RuntimeError",
                                              "message": "submission not loaded", "trace": []}})
                continue
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
            try:
                value = to_plain(result)
            except Unsupported as e:
                reply({"ok": False, "error": {"kind": "unsupported", "type": "TypeError",
                                              "message": f"returned {e}", "trace": []}})
                continue
            reply({"ok": True, "value": value})
        except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt are student errors too
            reply(_error(exc, "import" if op == "load" else "exception"))


if __name__ == "__main__":
    main()
