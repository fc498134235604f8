"""Run untrusted Python -- code a language model wrote -- the way the grader runs student code.

HW3's ``pass_at_1`` uses it: ``run_python(program, timeout)`` runs one program (the generated
function followed by its ``assert`` tests) in a throw-away sandbox and returns a ``RunResult`` whose
``status`` is "passed", "failed" or "timeout". A generated infinite loop, ``os.system(...)`` or a
fork bomb cannot hurt the notebook: see ``genai_course.grading.sandbox.run_python`` for the limits.
"""
from .grading.sandbox import RunResult, run_python

__all__ = ["RunResult", "run_python"]
