"""The shipped cluster jobs (deploy/): each parsed, and its worker command run here on a class.

The Kubernetes Job's container command and the Slurm array script are run as they are, with only
what a cluster provides replaced: the image's ``python`` by this interpreter, the course volume by
a test course, the gradebook secret by a database on the test server. Two copies run at once, as
the cluster would start them, and must grade the class exactly once between them.
"""

import re
import subprocess
import sys
import time

import pytest
import yaml

from course_tools.course import REPO
from course_tools.grading.status import Status
from tests.postgres_support import ASSIGNMENT, PostgresCourse, graded_by, new_course, sample
from tests.test_postgres_grading import server, unique  # noqa: F401 - the server fixture

pytestmark = [pytest.mark.postgres]
JOB = REPO / "deploy" / "kubernetes" / "grading-job.yaml"
ARRAY = REPO / "deploy" / "slurm" / "grade-array.sh"


def job() -> dict:
    return next(d for d in yaml.safe_load_all(JOB.read_text()) if d and d.get("kind") == "Job")


def container(manifest: dict) -> dict:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def test_job_is_a_work_queue_of_several_restartable_workers():
    manifest = job()
    spec = manifest["spec"]
    assert manifest["apiVersion"] == "batch/v1"
    assert spec["parallelism"] >= 2 and "completions" not in spec
    assert spec["template"]["spec"]["restartPolicy"] == "OnFailure"
    worker = container(manifest)
    assert "--worker" in worker["command"]
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert "/course" in mounts
    secret = next(e for e in worker["env"] if e["name"] == "MCL_GRADEBOOK_URL")
    assert "secretKeyRef" in secret["valueFrom"]  # the password never sits in the manifest


def job_command(pg: PostgresCourse) -> list[str]:
    """The container's command as Kubernetes expands it, on this machine's test course."""
    worker = container(job())
    values = {e["name"]: e["value"] for e in worker["env"] if "value" in e}
    values["ASSIGNMENT"] = ASSIGNMENT
    command = [
        re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], part) for part in worker["command"]
    ]
    assert command[0] == "python"
    mount = worker["volumeMounts"][0]["mountPath"]
    return [sys.executable] + [part.replace(mount, str(pg.root)) for part in command[1:]]


def array_size() -> int:
    """Tasks in the script's ``#SBATCH --array=a-b``."""
    match = re.search(r"^#SBATCH --array=(\d+)-(\d+)", ARRAY.read_text(), re.M)
    assert match, "grade-array.sh needs an #SBATCH --array=a-b line"
    return int(match.group(2)) - int(match.group(1)) + 1


def test_array_script_asks_for_several_tasks_and_is_valid_bash():
    assert array_size() >= 2
    assert subprocess.run(["bash", "-n", str(ARRAY)]).returncode == 0


def run_twice(pg: PostgresCourse, command_for, tmp_path) -> list[list[str]]:
    """Start two copies of a worker command at once; wait; the students each finished."""
    logs = [tmp_path / f"copy-{i}.log" for i in range(2)]
    processes = []
    for i, log in enumerate(logs):
        command, environment = command_for(i)
        with log.open("w") as handle:
            processes.append(
                subprocess.Popen(
                    command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, env=environment
                )
            )
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=600) == 0, log.read_text()
    return [graded_by(log) for log in logs]


@pytest.mark.parametrize("scheduler", ["kubernetes", "slurm"])
def test_shipped_worker_command_grades_the_class_exactly_once(server, tmp_path, scheduler):  # noqa: F811
    pg = new_course(server, tmp_path / "course", unique(scheduler))
    sample(pg, 3)

    def kubernetes(_: int):
        return job_command(pg), pg.environment

    def slurm(task: int):
        environment = {
            **pg.environment,
            "ASSIGNMENT": ASSIGNMENT,
            "MCL_REPO": str(REPO),
            "COURSE_ROOT": str(pg.root),
            "COURSE_SOURCE": str(pg.course.source),
            "PYTHON": sys.executable,
            "SLURM_ARRAY_TASK_ID": str(task),
        }
        return ["bash", str(ARRAY)], environment

    started = time.monotonic()
    finished = run_twice(pg, kubernetes if scheduler == "kubernetes" else slurm, tmp_path)
    everyone = sorted(s for batch in finished for s in batch)
    outcomes = pg.outcomes()
    assert everyone == sorted(outcomes), f"after {time.monotonic() - started:.0f} s"
    assert {o.status for o in outcomes.values()} == {Status.GRADED}
    assert {o.attempts for o in outcomes.values()} == {1}
