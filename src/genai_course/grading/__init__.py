"""The course autograder: extract a submission's definitions, run them in a sandbox, and score
them with a hidden suite that runs in this trusted process.

Hidden suites import their tools from here::

    from genai_course.grading import graded, Fail, Checks, expect_close, expect_equal, expect_shape, reference
"""
from .api import (Checks, Fail, GradedTest, StudentError, StudentTimeout, expect, expect_close, expect_equal,
                  expect_shape, expect_type, graded, randint)
from .runner import GraderError, course_root, grade_submission, hidden_suite, reference, suite_probes

__all__ = ["Checks", "Fail", "GradedTest", "StudentError", "StudentTimeout", "expect", "expect_close",
           "expect_equal", "expect_shape", "expect_type", "graded", "randint", "GraderError", "course_root",
           "grade_submission", "hidden_suite", "reference", "suite_probes"]
