"""The sandbox a student's kernel runs in: bubblewrap on Linux, resource limits everywhere.

With `bwrap` (Debian/Ubuntu package bubblewrap, the tool Flatpak uses), the kernel sees:
- read-only: the system (/usr, /etc and the /bin, /lib links), the Python installation and the
  course's virtual environment, nnlab and datasets/ (what the notebooks import and load);
- read-write: its own work folder (the notebook's data files) and the folder of its sockets;
- nothing else: no solutions/, no other submission, no gradebook, no grading output, no home;
- no network (a network namespace of its own: the kernel talks to the grader over Unix sockets),
  its own PID namespace (every process it starts dies with it, and it cannot see or signal the
  grader), and, when the grader runs as root, a user id of its own (so the process limit holds
  and two sandboxes cannot touch each other's files).
Without bwrap (macOS, Windows, a machine without the package) only the limits apply: the caller
says so in the log, and `autograde --require-sandbox` refuses to run.

Limits (rlimits set in the kernel's process before it starts, inherited by its children):
memory (data; the address space gets 2 GiB more for libraries and stacks), processes, size of a written file, open files; the output a notebook
may produce and the time per cell and per notebook are enforced by grader/execute.py.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

GiB, MB = 2 ** 30, 10 ** 6


@dataclass
class Limits:
    memory: int = 2 * GiB          # bytes of data (heap, private mappings) of each process of the kernel
    processes: int = 256           # processes and threads of the sandbox's user
    file_size: int = 100 * MB      # the largest file the kernel may write
    output: int = 100 * MB         # characters of output of the whole notebook
    open_files: int = 1024
    cell_timeout: float = 120      # seconds per cell
    notebook_timeout: float = 3600  # seconds for the whole notebook

    def as_dict(self):
        return asdict(self)


# Runs first inside the sandbox: limits, then (as root) a user of its own, then the kernel.
_LAUNCHER = r"""
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
for name, value in cfg["rlimits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if cfg.get("uid") is not None:
    os.setgroups([])
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])
os.execv(sys.argv[2], sys.argv[2:])
"""


@functools.lru_cache(maxsize=None)
def bwrap_path() -> str | None:
    """The bwrap binary, if it exists and can make a sandbox on this machine."""
    path = shutil.which("bwrap")
    if not path:
        return None
    try:
        r = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--die-with-parent",
                            *([] if os.geteuid() == 0 else ["--unshare-user"]), "true"],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if r.returncode == 0 else None


def sandbox_status() -> str:
    """One line for the log: what protects the grader from the notebooks it runs."""
    if bwrap_path():
        return "sandbox: bubblewrap (read-only course, no network, own PID namespace) and resource limits"
    return ("sandbox OFF: bwrap not available (install the bubblewrap package); "
            "running with resource limits only")


def course_environment() -> list[Path]:
    """What a kernel needs to read: the Python installation, the venv, nnlab and its datasets.
    Found without importing nnlab (the grader never imports it)."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix)}
    spec = find_spec("nnlab")
    if spec and spec.submodule_search_locations:
        pkg = Path(list(spec.submodule_search_locations)[0]).resolve()
        paths |= {pkg, pkg.parent / "datasets"}
    return sorted(p for p in paths if p.exists())


def _uid_for_this_job() -> int | None:
    """As root: a user id no other job has at the same time (derived from this worker's pid)."""
    return 200_000 + os.getpid() if os.geteuid() == 0 else None


def _processes_of_this_user() -> int:
    uid, n = os.getuid(), 0
    for p in Path("/proc").glob("[0-9]*"):
        try:
            n += p.stat().st_uid == uid
        except OSError:
            pass
    return n


class Sandbox:
    """Wraps a kernel command so that it runs inside the sandbox (or under limits only)."""

    def __init__(self, workdir: Path, socket_dir: Path, limits: Limits | None = None, use_bwrap: bool | None = None):
        self.workdir, self.socket_dir = Path(workdir), Path(socket_dir)
        self.limits = limits or Limits()
        self.bwrap = bwrap_path() if use_bwrap is not False else None
        if use_bwrap and not self.bwrap:
            raise RuntimeError("the sandbox was required but bwrap is not available")
        self.uid = _uid_for_this_job() if self.bwrap else None
        home = self.workdir / ".home"
        home.mkdir(exist_ok=True)
        _copy_matplotlib_cache(home / ".mpl")
        for p in [self.workdir, self.socket_dir, *self.workdir.rglob("*")]:
            self.give(p)
        os.chmod(self.workdir, 0o700)
        os.chmod(self.socket_dir, 0o700)

    def give(self, path) -> None:
        """Hand a file or folder to the kernel's own user (when it has one)."""
        if self.uid is not None:
            os.chown(path, self.uid, self.uid, follow_symlinks=False)

    @property
    def active(self) -> bool:
        return self.bwrap is not None

    def env(self) -> dict:
        home = str(self.workdir / ".home")
        keep = {k: v for k, v in os.environ.items()
                if k in ("LANG", "LC_ALL", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TZ")}
        return {**keep, "HOME": home, "IPYTHONDIR": home + "/.ipython", "MPLCONFIGDIR": home + "/.mpl",
                "MPLBACKEND": "Agg", "PYTHONNOUSERSITE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "TMPDIR": "/tmp"}

    def rlimits(self) -> dict:
        lim = self.limits
        nproc = lim.processes
        if self.uid is None:  # the kernel shares this user: the limit counts what the user already runs
            nproc += _processes_of_this_user()
        # RLIMIT_DATA is what the process really allocates; the address space (libraries and thread
        # stacks reserve about 1 GiB in an idle kernel) is capped too, with room for those
        out = {"RLIMIT_DATA": lim.memory, "RLIMIT_AS": lim.memory + 2 * GiB, "RLIMIT_FSIZE": lim.file_size, "RLIMIT_NOFILE": lim.open_files,
               "RLIMIT_NPROC": nproc, "RLIMIT_CORE": 0}
        return {k: int(v) for k, v in out.items() if v}

    def wrap(self, cmd: list[str]) -> list[str]:
        launcher = [sys.executable, "-c", _LAUNCHER,
                    json.dumps({"rlimits": self.rlimits(), "uid": self.uid}), *cmd]
        if not self.bwrap:
            return launcher
        args = [self.bwrap, "--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if os.geteuid() != 0:
            args.append("--unshare-user")
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            p = Path(top)
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), top]
            elif p.is_dir():
                args += ["--ro-bind", top, top]
        args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--tmpfs", "/dev/shm",  # multiprocessing needs it
                 "--perms", "1777", "--tmpfs", "/tmp"]
        made = {Path("/"), Path("/tmp")}
        binds = [("--ro-bind", p) for p in course_environment()] + [("--bind", self.workdir), ("--bind", self.socket_dir)]
        for how, p in binds:
            for parent in reversed(Path(p).parents):  # mount points readable by the kernel's user
                if parent not in made and not any(m in parent.parents for m in (Path("/usr"), Path("/etc"))):
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += [how, str(p), str(p)]
        args += ["--chdir", str(self.workdir), "--clearenv"]
        for k, v in self.env().items():
            args += ["--setenv", k, v]
        return args + ["--", *launcher]


def _copy_matplotlib_cache(dest: Path) -> None:
    """Matplotlib scans every font on its first start (a second or more): give each kernel a copy of
    this user's font list so that it does not."""
    dest.mkdir(parents=True, exist_ok=True)
    home = Path.home()
    for d in (os.environ.get("MPLCONFIGDIR"), os.environ.get("XDG_CACHE_HOME") and Path(os.environ["XDG_CACHE_HOME"]) / "matplotlib",
              home / ".cache" / "matplotlib", home / ".matplotlib"):
        if d and Path(d).is_dir():
            for f in Path(d).glob("fontlist-*.json"):
                shutil.copy2(f, dest / f.name)
            return
