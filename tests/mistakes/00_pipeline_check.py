"""Wrong answers for the pipeline-check assignment."""

from tests.notebook_harness import Mistake

MISTAKES = [
    Mistake(
        name="adds_instead_of_multiplies",
        answer_id="double_answer",
        source="def double(x):\n    return x + 1\n",
        fails=("double_tests",),
    ),
]
