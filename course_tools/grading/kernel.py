"""A Python kernel with a memory cap, for grading untrusted submissions.

``python -m course_tools.grading.kernel --memory-mb 4096 -f CONNECTION_FILE`` caps the kernel's
address space (``RLIMIT_AS``, inherited by its children) and then starts ipykernel as usual, so an
allocation past the cap raises ``MemoryError`` (or torch's "can't allocate memory") in the student's
cell instead of swapping the grading machine to death. :func:`install_kernelspec` writes the
kernelspec that nbgrader's ``Execute`` starts while grading.
"""

import argparse
import json
import resource
import sys
from pathlib import Path

KERNEL_NAME = "mcl-grading"
DEFAULT_MEMORY_MB = 4096


def cap_memory(megabytes: int) -> None:
    """Cap this process's virtual memory at ``megabytes`` (hard limit: the student cannot raise it)."""
    limit = megabytes * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing kernel leaves no core file


def install_kernelspec(
    data_dir: Path, memory_mb: int = DEFAULT_MEMORY_MB, name: str = KERNEL_NAME
) -> Path:
    """Write ``<data_dir>/kernels/<name>/kernel.json`` for this wrapper; put ``data_dir`` on JUPYTER_PATH."""
    folder = Path(data_dir) / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "course_tools.grading.kernel",
            "--memory-mb",
            str(memory_mb),
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",  # not the TCP-without-encryption warning per kernel
        ],
        "display_name": f"Python 3 (grading, {memory_mb} MB cap)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    return folder


def main(argv: list[str] | None = None) -> None:
    """Apply the memory cap, then hand the remaining arguments to ipykernel."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    cap_memory(args.memory_mb)
    sys.argv = [sys.argv[0], *rest]
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
