"""cgroup (v1) memory and pids groups that cap a sandboxed kernel's whole process tree.

``RLIMIT_AS`` and ``RLIMIT_NPROC`` are per process and per uid; a student who starts several
children gets past them. Each notebook's kernel therefore runs in a fresh memory group and pids
group (made here by the worker, joined by the launcher in :mod:`course_tools.grading.sandbox`).
When the kernel is done, whatever is still in the groups is killed and the groups are removed.
Needs root and the v1 controllers mounted under ``/sys/fs/cgroup``; otherwise :meth:`create`
returns None and only the per-process limits apply.
"""

import itertools
import os
import signal
import time
from pathlib import Path

from course_tools.grading.sandbox import CGROUPS_VARIABLE, SandboxSpec

ROOT = Path("/sys/fs/cgroup")
PARENT = "mcl-grading"
_counter = itertools.count()


PER_PROCESS_ONLY = "memory and process limits apply to each process, not to a kernel's whole tree"


def unusable_reason() -> str:
    """Why this process cannot create memory and pids groups ("" when it can)."""
    if os.geteuid() != 0:
        return "cgroups need root"
    missing = [c for c in ("memory", "pids") if not (ROOT / c / "cgroup.procs").exists()]
    if not missing:
        return ""
    reason = f"no cgroup v1 {' and '.join(missing)} controller under {ROOT}"
    if (ROOT / "cgroup.controllers").exists():
        reason += " (this host has cgroup v2, which the grader does not use yet)"
    return reason


def usable() -> bool:
    """True when this process may create memory and pids groups."""
    return not unusable_reason()


class KernelGroup:
    """The memory and pids groups of one kernel; a context manager around its run."""

    def __init__(self, memory: Path, pids: Path) -> None:
        self.memory, self.pids = memory, pids
        self.leftover = 0
        self.out_of_memory = False

    @classmethod
    def create(cls, spec: SandboxSpec | None = None) -> "KernelGroup | None":
        """Fresh groups with the spec's limits, or None where cgroups cannot be used."""
        if not usable():
            return None
        spec = spec or SandboxSpec.from_env()
        name = f"{os.getpid()}-{next(_counter)}"
        memory, pids = (ROOT / c / PARENT / name for c in ("memory", "pids"))
        for group in (memory, pids):
            group.mkdir(parents=True, exist_ok=True)
        limit = str(spec.memory_mb * 2**20)
        (memory / "memory.limit_in_bytes").write_text(limit)
        swap = memory / "memory.memsw.limit_in_bytes"
        if swap.exists():  # no swap past the cap either
            swap.write_text(limit)
        (pids / "pids.max").write_text(str(spec.max_processes))
        return cls(memory, pids)

    def __enter__(self) -> "KernelGroup":
        os.environ[CGROUPS_VARIABLE] = os.pathsep.join(map(str, (self.memory, self.pids)))
        return self

    def __exit__(self, *exc) -> bool:
        os.environ.pop(CGROUPS_VARIABLE, None)
        self.out_of_memory = self._oom_kills() > 0
        deadline = time.monotonic() + 2  # the PID namespace dies with the kernel: let it
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.leftover = len(self.processes())
        for _ in range(50):
            alive = self.processes()
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for group in (self.memory, self.pids):
            try:
                group.rmdir()
            except OSError:
                pass
        return False

    def processes(self) -> list[int]:
        """Pids still in the groups."""
        pids = set()
        for group in (self.memory, self.pids):
            procs = group / "cgroup.procs"
            if procs.exists():
                pids |= {int(p) for p in procs.read_text().split()}
        return sorted(pids)

    def _oom_kills(self) -> int:
        """How many processes the memory cap killed (or allocations it refused)."""
        control = self.memory / "memory.oom_control"
        if control.exists():
            for line in control.read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        failcnt = self.memory / "memory.failcnt"
        return int(failcnt.read_text()) if failcnt.exists() else 0
