"""Feedback preprocessor: outputs of test cells never quote their hidden tests.

The grader already replaces the output of a hidden part by pass or fail and a message
(:mod:`course_tools.grading.execute`); this is the second line of defence.

nbgrader's ``ClearHiddenTests`` removes the hidden block from a test cell's source, but the cell's
error traceback still prints the failing hidden line (and the lines around it). Placed before
``ClearHiddenTests``, :class:`HideHiddenTestOutput` cuts every traceback of a cell that has hidden
tests down to its last line (``AssertionError: <message>``) and drops any output line that quotes
a hidden line.
"""

import re

from nbgrader.preprocessors import NbGraderPreprocessor

from course_tools.grading.cells import HIDDEN_BEGIN, hidden_lines, is_test_cell

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def scrub(text: str, secret: list[str]) -> str:
    """``text`` without the lines that quote one of ``secret``."""
    plain = ANSI.sub("", text)
    if not any(line in plain for line in secret):
        return text
    kept = [
        line for line in text.splitlines(True) if not any(s in ANSI.sub("", line) for s in secret)
    ]
    return "".join(kept)


class HideHiddenTestOutput(NbGraderPreprocessor):
    """Shorten tracebacks and scrub outputs of test cells that contain hidden tests."""

    def preprocess_cell(self, cell, resources, index):
        """Leave cells without hidden tests alone."""
        if not is_test_cell(cell):
            return cell, resources
        secret = hidden_lines(cell.source)
        if HIDDEN_BEGIN not in cell.source:
            return cell, resources
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                output.evalue = scrub(output.evalue, secret)
                output.traceback = [
                    f"{output.ename}: {output.evalue}",
                    "(traceback hidden: this test cell contains hidden tests)",
                ]
            elif output.output_type == "stream":
                output.text = scrub(output.text, secret)
            elif "data" in output and "text/plain" in output.data:
                output.data["text/plain"] = scrub(output.data["text/plain"], secret)
        return cell, resources
