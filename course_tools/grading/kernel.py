"""The grading kernel: limits, an unprivileged uid, the interpreter guard, then ipykernel.

Started inside the sandbox by :mod:`course_tools.grading.sandbox` (or directly, without a sandbox,
when the instructor chose ``--no-sandbox``)::

    python -m course_tools.grading.kernel --spec JSON -f CONNECTION_FILE

It sets per-process limits (address space, file size, core files, and the process count when no
cgroup caps it), drops root for the spec's uid, and starts ipykernel with
:mod:`course_tools.grading.kernel_guard` loaded as an extension before any student code runs.
"""

import argparse
import json
import os
import resource
import sys
from pathlib import Path

KERNEL_NAME = "mcl-grading"
DEFAULT_MEMORY_MB = 4096


def set_limits(memory_mb: int, max_file_mb: int, max_processes: int | None) -> None:
    """Hard per-process limits the student cannot raise (cgroups cap the whole tree as well).

    ``max_processes`` None: a pids cgroup caps the tree; ``RLIMIT_NPROC`` counts every process of
    the uid on the machine, so it is set only where no cgroup does the job.
    """
    limits = {
        resource.RLIMIT_AS: memory_mb * 2**20,
        resource.RLIMIT_FSIZE: max_file_mb * 2**20,
        resource.RLIMIT_CORE: 0,
    }
    if max_processes is not None:
        limits[resource.RLIMIT_NPROC] = max_processes
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def drop_root(uid: int) -> None:
    """Become ``uid`` for good (no supplementary groups, no capabilities left)."""
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def install_kernelspec(data_dir: Path, sandboxed: bool, memory_mb: int = DEFAULT_MEMORY_MB) -> Path:
    """Write ``<data_dir>/kernels/mcl-grading/kernel.json``; put ``data_dir`` on JUPYTER_PATH.

    Sandboxed, the kernelspec starts the launcher, which reads its limits from the environment
    (:class:`course_tools.grading.sandbox.SandboxSpec`); otherwise the kernel itself with the
    memory cap. Interrupts go as messages: a signal would reach bwrap, not the kernel.
    """
    folder = Path(data_dir) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    if sandboxed:
        argv = [sys.executable, "-m", "course_tools.grading.sandbox"]
    else:
        spec = json.dumps({"memory_mb": memory_mb, "max_processes": 4096, "max_file_mb": 1024})
        argv = [sys.executable, "-m", "course_tools.grading.kernel", "--spec", spec]
    spec_json = {
        "argv": [*argv, "-f", "{connection_file}"],
        "display_name": "Python 3 (grading)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec_json, indent=1) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    """Apply the limits, drop root, then hand the remaining arguments to ipykernel."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON of SandboxSpec fields")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    spec = json.loads(args.spec)
    processes = None if spec.get("tree_capped") else spec["max_processes"]
    set_limits(spec["memory_mb"], spec["max_file_mb"], processes)
    if "uid" in spec:
        drop_root(spec["uid"])
    sys.argv = [
        sys.argv[0],
        *rest,
        "--IPKernelApp.log_level=ERROR",
        "--IPKernelApp.extensions=['course_tools.grading.kernel_guard']",
    ]
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
