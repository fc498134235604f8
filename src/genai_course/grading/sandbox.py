"""Start the child process that runs student code, as isolated as this machine allows.

With bubblewrap (``bwrap``): no network, a fresh pid namespace, a private ``/tmp``, and a filesystem
made only of the system directories, the Python installation, this package and the submission's own
folder -- the hidden suites, ``solutions/``, the output folder and other submissions do not exist in
there. Limits: memory (address space, plus a memory cgroup when writable), CPU seconds, file size
(which caps captured output), open files, and the number of processes/threads (a pids cgroup when
writable, else RLIMIT_NPROC). Without bwrap it falls back to a plain subprocess and says so loudly.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import genai_course

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PKG_MOUNT = "/opt/genai_course_pkg"


@dataclass
class Limits:
    memory_bytes: int = 6 * 2**30  # address space of the child (torch reserves a lot of it)
    cgroup_memory_bytes: int = 3 * 2**30  # resident memory, where a memory cgroup can be made
    cpu_seconds: int = 600  # CPU time over the child's whole life
    max_processes: int = 64  # processes + threads (pids cgroup), or RLIMIT_NPROC
    output_bytes: int = 8 * 2**20  # largest file the child may write (stdout/stderr capture too)
    open_files: int = 256
    import_seconds: float = 60.0  # wall time to import the submission (torch alone takes a few)


def bwrap_path() -> str | None:
    if os.environ.get("GENAI_COURSE_NO_BWRAP") == "1":
        return None
    return shutil.which("bwrap")


_BWRAP_WORKS: dict[str, bool] = {}


def bwrap_usable() -> bool:
    """bwrap exists and can actually create namespaces here (not true in every container)."""
    exe = bwrap_path()
    if exe is None:
        return False
    if exe not in _BWRAP_WORKS:
        try:
            proc = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                                  capture_output=True, timeout=20)
            _BWRAP_WORKS[exe] = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _BWRAP_WORKS[exe] = False
    return _BWRAP_WORKS[exe]


class _Cgroup:
    """A per-child cgroup (v1) under pids/ and memory/, when this process may create one."""

    def __init__(self, limits: Limits):
        self.dirs: list[Path] = []
        name = f"genai-grade-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for ctrl, files in (("pids", {"pids.max": str(limits.max_processes)}),
                            ("memory", {"memory.limit_in_bytes": str(limits.cgroup_memory_bytes),
                                        "memory.memsw.limit_in_bytes": str(limits.cgroup_memory_bytes)})):
            base = _CGROUP_ROOT / ctrl
            if not base.is_dir() or not os.access(base, os.W_OK):
                continue
            d = base / name
            try:
                d.mkdir()
                for fname, value in files.items():
                    try:
                        (d / fname).write_text(value)
                    except OSError:
                        if fname != "memory.memsw.limit_in_bytes":  # absent without swap accounting
                            raise
                self.dirs.append(d)
            except OSError:
                try:
                    d.rmdir()
                except OSError:
                    pass

    @property
    def limits_pids(self) -> bool:
        return any(d.parent.name == "pids" for d in self.dirs)

    def join(self) -> None:  # runs in the child between fork and exec
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        for _ in range(50):
            pids = set()
            for d in self.dirs:
                try:
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
                except OSError:
                    pass
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


def _ro_binds() -> list[str]:
    """Read-only binds for the system and the Python installation."""
    args: list[str] = []
    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        p = Path(d)
        if p.is_symlink():
            args += ["--symlink", os.readlink(d), d]
        elif p.is_dir():
            args += ["--ro-bind", d, d]
    seen = set()
    paths = {sys.base_prefix, sys.prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    for p in sorted(paths):
        real = os.path.realpath(p)
        if real not in seen and os.path.isdir(real) and not real.startswith(("/usr", "/etc")):
            seen.add(real)
            args += ["--ro-bind", real, real]
            if p != real:
                args += ["--symlink", real, p]
    return args


@dataclass
class ChildProcess:
    proc: subprocess.Popen
    request_fd: int  # parent writes requests here
    reply_fd: int  # parent reads replies here
    cgroup: _Cgroup
    stdout_path: Path
    sandboxed: bool

    def kill(self) -> None:
        for fd in (self.request_fd, self.reply_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.cgroup.kill_all()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def output_tail(self, limit: int = 2000) -> str:
        try:
            with open(self.stdout_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def spawn(work_dir: Path, limits: Limits | None = None) -> ChildProcess:
    """Start ``python -m genai_course.grading.child`` with ``work_dir`` (holding the extracted
    submission) as its only writable-looking project folder, mounted read-only at /submission."""
    limits = limits or Limits()
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    stdout_path = work_dir / "child-output.txt"
    out = open(stdout_path, "wb")
    cgroup = _Cgroup(limits)
    pkg_dir = Path(genai_course.__file__).resolve().parent
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/mpl", "GENAI_COURSE_DATA": "/tmp/no-data"}
    sandboxed = bwrap_usable()
    # -E ignores PYTHON* variables; a tiny bootstrap puts this package's folder first on sys.path.
    pkg_parent = _PKG_MOUNT if sandboxed else str(pkg_dir.parent)
    child_argv = [sys.executable, "-s", "-E", "-c",
                  f"import sys; sys.path.insert(0, {pkg_parent!r}); "
                  "from genai_course.grading.child import main; main()", str(req_r), str(rep_w)]
    if sandboxed:
        # The private /tmp comes first: binds after it may live under /tmp (a venv or checkout there).
        argv = [bwrap_path(), "--tmpfs", "/tmp", *_ro_binds(),
                "--ro-bind", str(pkg_dir), f"{_PKG_MOUNT}/genai_course",
                "--ro-bind", str(work_dir), "/submission",
                "--proc", "/proc", "--dev", "/dev",
                "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--chdir", "/tmp", "--", *child_argv]
    else:
        warnings.warn("bubblewrap (bwrap) is not available: student code runs in a plain subprocess "
                      "WITHOUT filesystem or network isolation. Install bubblewrap for real grading.",
                      RuntimeWarning, stacklevel=2)
        argv = child_argv

    def preexec() -> None:
        os.setsid()
        cgroup.join()
        for res, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_CPU, limits.cpu_seconds),
                           (resource.RLIMIT_FSIZE, limits.output_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
                           (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(res, (value, value))
        if not cgroup.limits_pids:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                pass_fds=(req_r, rep_w), preexec_fn=preexec,
                                cwd=str(work_dir) if not sandboxed else None)
    except BaseException:
        cgroup.kill_all()
        raise
    finally:
        out.close()
        os.close(req_r)
        os.close(rep_w)
    return ChildProcess(proc=proc, request_fd=req_w, reply_fd=rep_r, cgroup=cgroup, stdout_path=stdout_path,
                        sandboxed=sandboxed)
