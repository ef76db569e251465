# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Pipeline check
# A minimal assignment that proves the build and grading path.

# %% [markdown]
# **Question.** Why is doubling easy?

# %%
import json
import os

import torch

GRADING = "NBGRADER_EXECUTION" in os.environ

# %% tags=["parameters"]
SEED = 0


# %% nbgrader={"grade": false, "grade_id": "double_answer", "locked": false, "schema_version": 3, "solution": true}
def double(x: torch.Tensor) -> torch.Tensor:
    """Return ``2 * x``."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "double_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false}
assert torch.equal(double(torch.ones(3)), 2 * torch.ones(3))
### BEGIN HIDDEN TESTS
assert torch.equal(double(torch.arange(4.0)), torch.tensor([0.0, 2.0, 4.0, 6.0])), "hidden"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": true, "grade_id": "why", "locked": false, "points": 1, "schema_version": 3, "solution": true, "task": false}
# Because doubling is linear.

# %% tags=["summary"]
torch.manual_seed(SEED)
print(json.dumps({"double_sum": double(torch.randn(4)).sum().item()}))
