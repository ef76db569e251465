"""A bubblewrap sandbox for one grading kernel, and the cgroups that cap its whole process tree.

The grading kernelspec starts ``python -m course_tools.grading.sandbox -f CONNECTION_FILE`` on the
host. That launcher reads the :class:`SandboxSpec` from the environment, joins the cgroups the
worker made for this notebook, and execs ``bwrap``, which starts the kernel
(:mod:`course_tools.grading.kernel`) with:

- new PID, network, IPC and UTS namespaces: no network at all, and every process the student
  starts dies with the kernel (the namespace's init is killed with it, ``--die-with-parent``);
- a read-only view of the system libraries, the interpreter, the virtual environment and the two
  packages the kernel imports (``lab_utils`` and ``course_tools``), and nothing else of the host:
  not the course root, ``solutions/``, ``build/``, the gradebook, other students' files or any
  home folder;
- a private, size-capped ``tmpfs`` home as working folder and ``/tmp``; the only host folder it
  may write is the one holding its own connection file and ``ipc`` sockets;
- an empty environment but for a few variables (no instructor variables);
- as root: an unprivileged uid of its worker's own (100000 and up: neither the instructor nor root),
  memory and process count capped for the whole tree by cgroups, file size by ``RLIMIT_FSIZE``.
  Not as root: a user namespace maps the kernel's uid to yours and only per-process limits apply.
"""

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

SPEC_VARIABLE = "MCL_SANDBOX_SPEC"
CGROUPS_VARIABLE = "MCL_SANDBOX_CGROUPS"
HOME = "/home/student"
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/etc")
PASSED_VARIABLES = ("NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class SandboxSpec:
    """Limits of one sandboxed kernel and the host folders it may see."""

    memory_mb: int = 4096
    max_processes: int = 256
    max_file_mb: int = 64
    scratch_mb: int = 256  # each of the private home and /tmp (counted against memory_mb)
    uid: int = 100_000
    readable: tuple[str, ...] = ()  # host folders bound read-only at the same path
    writable: str = ""  # where kernels get their own connection folders (one is bound read-write)
    pythonpath: tuple[str, ...] = ()  # where the kernel finds lab_utils and course_tools
    tree_capped: bool = False  # cgroups cap the process tree: no per-uid process limit needed

    def to_env(self) -> str:
        """The spec as the launcher reads it from :data:`SPEC_VARIABLE`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "SandboxSpec":
        """The spec the worker put in the environment."""
        data = json.loads(os.environ[SPEC_VARIABLE])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def unavailable() -> str | None:
    """Why no sandbox can run here, or None when bubblewrap works."""
    if sys.platform != "linux":
        return f"bubblewrap needs Linux, this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    return None


def package_dirs() -> tuple[str, ...]:
    """Folders of the packages a grading kernel imports (the rest of the repo stays hidden).

    Imports ``lab_utils`` (and so torch): call it once per worker, never in the launcher.
    """
    import course_tools
    import lab_utils

    return tuple(str(Path(m.__file__).resolve().parent) for m in (lab_utils, course_tools))


def course_environment() -> tuple[str, ...]:
    """The interpreter and the virtual environment, read-only in the sandbox.

    Also any site-packages folder outside them that a ``.pth`` file added (an environment that
    reuses another one's packages, as the JupyterHub test's does).
    """
    prefixes = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1])}
    layered = {
        str(Path(p).resolve())
        for p in sys.path
        if Path(p).name == "site-packages"
        and Path(p).is_dir()
        and not any(Path(p).resolve().is_relative_to(prefix) for prefix in prefixes)
    }
    return tuple(sorted(prefixes | layered))


def _ancestors(paths: list[str]) -> list[str]:
    """Every parent folder of ``paths`` (shallowest first) that bwrap must create, traversable."""
    found = {str(p) for path in paths for p in Path(path).parents if str(p) != "/"}
    return sorted(found, key=lambda p: (p.count("/"), p))


def bwrap_command(spec: SandboxSpec, kernel_argv: list[str], as_root: bool) -> list[str]:
    """The ``bwrap`` command line that runs ``kernel_argv`` in the sandbox ``spec`` describes."""
    binds = [d for d in SYSTEM_DIRS if os.path.exists(d)] + list(spec.readable)
    argv = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    argv += ["--die-with-parent", "--new-session", "--clearenv"]
    if not as_root:
        argv += ["--unshare-user", "--uid", str(spec.uid), "--gid", str(spec.uid)]
    size = str(spec.scratch_mb * 2**20)
    for folder in ("/tmp", HOME):  # first: a host folder under /tmp is bound on top of it
        argv += ["--perms", "1777", "--size", size, "--tmpfs", folder]
    for folder in _ancestors(binds + [spec.writable]):
        argv += ["--perms", "0755", "--dir", folder]
    for folder in sorted(dict.fromkeys(binds), key=lambda p: (p.count("/"), p)):
        argv += ["--ro-bind", folder, folder]
    argv += ["--bind", spec.writable, spec.writable]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    environment = {
        "HOME": HOME,
        "USER": "student",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "MPLCONFIGDIR": f"{HOME}/.matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join(spec.pythonpath),
    }
    environment |= {k: os.environ[k] for k in PASSED_VARIABLES if k in os.environ}
    for key, value in environment.items():
        argv += ["--setenv", key, value]
    return [*argv, "--chdir", HOME, "--", *kernel_argv]


def join_cgroups() -> None:
    """Move this process (and so everything it starts) into the worker's cgroups for this kernel."""
    for group in filter(None, os.environ.get(CGROUPS_VARIABLE, "").split(os.pathsep)):
        Path(group, "cgroup.procs").write_text(str(os.getpid()))


def main(argv: list[str] | None = None) -> None:
    """Launcher: ``python -m course_tools.grading.sandbox -f CONNECTION_FILE`` (from the kernelspec)."""
    args = sys.argv[1:] if argv is None else argv
    spec = SandboxSpec.from_env()
    as_root = os.geteuid() == 0
    if as_root and "-f" in args:  # jupyter_client wrote it 0600 for us; the kernel's uid reads it
        os.chown(args[args.index("-f") + 1], spec.uid, spec.uid)
    join_cgroups()
    if "-f" in args:  # bind only this kernel's own folder, not the worker's runtime folder
        spec = replace(spec, writable=os.path.dirname(args[args.index("-f") + 1]))
    spec = replace(spec, tree_capped=bool(os.environ.get(CGROUPS_VARIABLE)))
    kernel = [sys.executable, "-m", "course_tools.grading.kernel", "--spec", spec.to_env(), *args]
    command = bwrap_command(spec, kernel, as_root)
    devnull = os.open(
        os.devnull, os.O_WRONLY
    )  # cells talk over iopub; nothing reaches the grader's
    os.dup2(devnull, 1)  # terminal (ipykernel's banner, or a student writing to fds 1 and 2)
    os.dup2(devnull, 2)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
