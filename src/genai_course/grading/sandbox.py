"""Start the sandbox that runs student code, as isolated as this machine allows, and measure it
from outside.

The sandbox is one *fork-server* process per submission: it imports torch once, then the grader's
probes, then the student's module, and afterwards forks a fresh *worker* (in milliseconds) for every
test; the worker answers that test's calls and is thrown away. Start-up and import happen outside
every test's clock.

Isolation, with bubblewrap (``bwrap``): the process drops to an unprivileged uid/gid (``nobody``)
before bwrap runs, so nothing root-only is readable inside; no network, a fresh pid namespace, a
private ``/tmp``, and a filesystem made only of the system directories, the Python installation,
this package and the submission's own folder -- the hidden suites, ``solutions/``, the output folder
and other submissions do not exist in there. Limits: address space, CPU seconds, file size (which
caps captured output), open files, and processes/threads. Where the grader may create cgroups, the
sandbox gets its own ones *nested under the grader's* cgroups (memory, pids, and an optional CPU
quota), removed when it ends; ones left by a killed grader are removed by the next one. Without
bwrap it falls back to a plain subprocess and says so loudly.

Measurements that decide points are read from the kernel, never from the child: CPU time and
run-queue delay from ``/proc/<pid>/stat`` and ``schedstat``, and memory budgets are address-space
limits that the parent sets on a worker with ``prlimit`` (the worker cannot raise them).
"""
from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import genai_course

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PKG_MOUNT = "/opt/genai_course_pkg"
_PREFIX = "genai-grade-"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SLOW_START_ENV = "GENAI_COURSE_SLOW_START"  # seconds every sandbox sleeps before it starts (a test stand-in)


@dataclass
class Limits:
    """Resource limits of one submission's sandbox. ``timeout`` of a test counts the worker's CPU
    seconds; the wall-clock guard is ``wall_factor`` times larger."""
    memory_bytes: int = 6 * 2**30  # address space of each process (torch reserves a lot of it)
    cgroup_memory_bytes: int = 3 * 2**30  # resident memory of the whole sandbox, where a memory cgroup can be made
    cpu_seconds: int = 600  # CPU time of each process over its life (RLIMIT_CPU)
    cpu_quota: float | None = None  # cores the sandbox may use (cgroup CPU quota), None = no quota
    max_processes: int = 64  # processes + threads (pids cgroup), or RLIMIT_NPROC
    output_bytes: int = 8 * 2**20  # largest file the child may write (stdout/stderr capture too)
    open_files: int = 256
    startup_seconds: float = 300.0  # wall time for the sandbox to start and import torch (the grader's own budget)
    import_seconds: float = 60.0  # CPU seconds to import the submission (its top-level definitions)
    wall_factor: float = 4.0  # wall-clock guard = wall_factor * CPU limit (+ wall_slack)
    wall_slack: float = 10.0

    @classmethod
    def from_json(cls, path: Path) -> "Limits":
        """Per-assignment limits: a JSON object whose keys are field names of ``Limits``."""
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown limit(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def wall_guard(self, cpu_limit: float) -> float:
        return self.wall_factor * cpu_limit + self.wall_slack


def bwrap_path() -> str | None:
    if os.environ.get("GENAI_COURSE_NO_BWRAP") == "1":
        return None
    return shutil.which("bwrap")


def _sandbox_user() -> tuple[int, int] | None:
    """(uid, gid) the child runs as when the grader is root: ``nobody``."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


_BWRAP_WORKS: dict[tuple, bool] = {}


def _bwrap_isolation() -> list[str]:
    """Namespaces and capabilities. As root, no user namespace: the child keeps only CAP_SETUID and
    CAP_SETGID, which its first statement uses to become ``nobody`` (bwrap always sets no_new_privs,
    so no setuid program can bring root back). As another user, bwrap makes a user namespace."""
    if _sandbox_user() is not None:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-all", "--cap-drop", "ALL"]


def bwrap_mode() -> str | None:
    """"root" (bwrap runs as root and the child drops to nobody), "user" (bwrap runs as this
    unprivileged user), or None when bwrap is missing or cannot create namespaces here."""
    exe = bwrap_path()
    if exe is None:
        return None
    key = (exe, os.geteuid())
    if key not in _BWRAP_WORKS:
        try:
            proc = subprocess.run([exe, "--ro-bind", "/", "/", *_bwrap_isolation(), "--die-with-parent", "true"],
                                  capture_output=True, timeout=20)
            _BWRAP_WORKS[key] = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired, subprocess.SubprocessError):
            _BWRAP_WORKS[key] = False
    if not _BWRAP_WORKS[key]:
        return None
    return "root" if _sandbox_user() is not None else "user"


def bwrap_usable() -> bool:
    """bwrap exists and can actually create namespaces here (not true in every container)."""
    return bwrap_mode() is not None


# --- cgroups ---------------------------------------------------------------------------------------

def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path (v1 controllers by name, v2 under "")."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(","):
                out[c] = path
    except OSError:
        pass
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _remove_cgroup(d: Path) -> None:
    for _ in range(100):
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


class _Cgroup:
    """Per-sandbox cgroups nested under the grader's own ones (v1: pids, memory, cpu; v2: one
    group), when this process may create them."""

    def __init__(self, limits: Limits):
        self.dirs: list[Path] = []
        self.limits_pids = False
        name = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        own = _own_cgroups()
        quota = limits.cpu_quota
        period = 100_000
        v1 = {"pids": {"pids.max": str(limits.max_processes)},
              "memory": {"memory.limit_in_bytes": str(limits.cgroup_memory_bytes),
                         "memory.memsw.limit_in_bytes": str(limits.cgroup_memory_bytes)},
              "cpu": {"cpu.cfs_period_us": str(period), "cpu.cfs_quota_us": str(int(quota * period))} if quota else {}}
        optional = {"memory.memsw.limit_in_bytes"}  # absent without swap accounting
        if (_CGROUP_ROOT / "cgroup.controllers").is_file():  # pure v2
            files = {"pids.max": str(limits.max_processes), "memory.max": str(limits.cgroup_memory_bytes),
                     "memory.swap.max": "0"}
            if quota:
                files["cpu.max"] = f"{int(quota * period)} {period}"
            optional |= {"memory.swap.max"}
            self._make(_CGROUP_ROOT / own.get("", "/").lstrip("/"), name, files, optional, "pids.max")
        else:
            for ctrl, files in v1.items():
                if ctrl == "cpu" and not files:
                    continue
                self._make(_CGROUP_ROOT / ctrl / own.get(ctrl, "/").lstrip("/"), name, files, optional, "pids.max")

    def _make(self, base: Path, name: str, files: dict, optional: set, pids_file: str) -> None:
        if not base.is_dir() or not os.access(base, os.W_OK):
            return
        _remove_stale(base)
        d = base / name
        try:
            d.mkdir()
            for fname, value in files.items():
                try:
                    (d / fname).write_text(value)
                    if fname == pids_file:
                        self.limits_pids = True
                except OSError:
                    if fname not in optional:
                        raise
            self.dirs.append(d)
        except OSError:
            try:
                d.rmdir()
            except OSError:
                pass

    def join(self) -> None:  # runs in the child between fork and exec
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        for d in self.dirs:
            _remove_cgroup(d)
        self.dirs = []


def _remove_stale(base: Path) -> None:
    """Remove sandbox cgroups left behind by a grader that was killed."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    for d in entries:
        if d.is_dir() and d.name.startswith(_PREFIX):
            try:
                owner = int(d.name[len(_PREFIX):].split("-")[0])
            except ValueError:
                continue
            if not _pid_alive(owner):
                _remove_cgroup(d)


# --- reading processes from outside -----------------------------------------------------------------

def proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process incl. its reaped children) from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    f = raw[raw.rindex(b")") + 2:].split()
    return int(f[1]), (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / CLK_TCK


def descendants(root: int) -> list[int]:
    """Live processes below ``root`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (reaped ones are in their parent's)."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        st = proc_stat(p)
        if st is not None:
            total += st[1]
    return total


def run_delay(pid: int) -> float:
    """Seconds the threads of ``pid`` have spent runnable but waiting for a CPU (kernel schedstat)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for t in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def host_pid(root: int, inner: int) -> int | None:
    """The host pid of the process below ``root`` whose pid in its own namespace is ``inner``."""
    for p in descendants(root):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    if int(line.split()[-1]) == inner:
                        return p
                    break
        except (OSError, ValueError):
            pass
    return None


def as_limit(pid: int) -> int | None:
    """The hard address-space limit of ``pid`` (bytes) as the kernel reports it; None if unlimited."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max address space"):
                hard = line.split()[4]
                return None if hard == "unlimited" else int(hard)
    except (OSError, ValueError, IndexError):
        pass
    return None


def vm_size(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


# --- the sandbox ----------------------------------------------------------------------------------------

def _symlink_hops(path: str, limit: int = 40) -> list[tuple[str, str]]:
    """Every symlink met while resolving ``path``, as (link, absolute target) pairs, in order."""
    hops: list[tuple[str, str]] = []
    todo, cur = list(Path(os.path.abspath(path)).parts[1:]), "/"
    while todo and len(hops) < limit:
        nxt = os.path.join(cur, todo.pop(0))
        if os.path.islink(nxt):
            target = os.path.normpath(os.path.join(cur, os.readlink(nxt)))
            hops.append((nxt, target))
            todo, cur = list(Path(target).parts[1:]) + todo, "/"
        else:
            cur = nxt
    return hops


def _ro_binds(extra: list[tuple[str, str]]) -> list[str]:
    """Read-only binds for the system, the Python installation and ``extra`` (source, dest) pairs.
    Every folder bwrap creates on the way is made world-readable (as root it would be 0700, and the
    child runs as nobody)."""
    args: list[str] = []
    made: set[str] = {"/"}

    def parents(dest: str) -> None:
        for parent in reversed(Path(dest).parents):
            if str(parent) not in made:
                made.add(str(parent))
                args.extend(["--perms", "0755", "--dir", str(parent)])

    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        p = Path(d)
        if p.is_symlink():
            args += ["--symlink", os.readlink(d), d]
        elif p.is_dir():
            args += ["--ro-bind", d, d]
        made.add(d)
    # The Python installation: every real folder it lives in (a venv's bin/ and lib/ may be symlinks into
    # another tree, and sys.executable may sit in a venv whose site-packages is elsewhere), then the
    # symlinked names that no bound folder already provides.
    paths = {sys.base_prefix, sys.prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
             os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))}
    bound = ["/usr", "/etc"]

    def covered(path: str) -> bool:
        return any(path == b or path.startswith(b + "/") for b in bound)

    for real in sorted({os.path.realpath(p) for p in paths}):
        if os.path.isdir(real) and not covered(real):
            parents(real)
            args += ["--ro-bind", real, real]
            made.add(real)
            bound.append(real)
    links = sorted({hop for p in paths for hop in _symlink_hops(p)}, key=lambda h: (h[0].count("/"), h[0]))
    for link, target in links:  # a chain venv/bin -> other-venv/bin -> real/bin needs every hop inside too
        if link not in made and not covered(link):
            parents(link)
            args += ["--symlink", target, link]
            made.add(link)
    for src, dest in extra:
        parents(dest)
        args += ["--ro-bind", src, dest]
        made.add(dest)
    return args


@dataclass
class Sandbox:
    """A running fork-server: ``control`` is its socket; ``proc`` the outermost process."""
    proc: subprocess.Popen
    control: socket.socket
    cgroup: _Cgroup
    stdout_path: Path
    sandboxed: bool
    mode: str | None  # bwrap_mode() at start
    expect_uid: int | None  # the uid the child must run as (checked from outside), None = any

    def kill(self) -> None:
        try:
            self.control.close()
        except OSError:
            pass
        for p in descendants(self.proc.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
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

    def server_pid(self) -> int | None:
        """Host pid of the fork-server python process (the innermost of the start-up chain)."""
        if not self.sandboxed:
            return self.proc.pid
        chain = [self.proc.pid, *descendants(self.proc.pid)]
        for p in chain:
            try:
                if Path(f"/proc/{p}/comm").read_text().strip().startswith("python"):
                    return p
            except OSError:
                pass
        return None

    def output_tail(self, limit: int = 2000) -> str:
        try:
            with open(self.stdout_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def spawn(work_dir: Path, limits: Limits | None = None) -> Sandbox:
    """Start the fork-server with ``work_dir`` (holding the extracted submission) mounted read-only
    at /submission. The caller talks to it over ``Sandbox.control`` (see ``child.py``)."""
    limits = limits or Limits()
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    stdout_path = work_dir / "child-output.txt"
    out = open(stdout_path, "wb")
    cgroup = _Cgroup(limits)
    pkg_dir = Path(genai_course.__file__).resolve().parent
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "PYTHONHASHSEED": "0",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/mpl", "GENAI_COURSE_DATA": "/tmp/no-data"}
    mode = bwrap_mode()
    sandboxed = mode is not None
    try:
        delay = float(os.environ.get(SLOW_START_ENV, "0") or 0)
    except ValueError:
        delay = 0.0
    # -E ignores PYTHON* variables; a tiny bootstrap puts this package's folder first on sys.path.
    pkg_parent = _PKG_MOUNT if sandboxed else str(pkg_dir.parent)
    user = _sandbox_user() if mode == "root" else None
    drop = f"os.setgroups([]); os.setgid({user[1]}); os.setuid({user[0]}); " if user else ""
    bootstrap = (f"import os, sys, time; {drop}time.sleep({delay!r}); sys.path.insert(0, {pkg_parent!r}); "
                 "from genai_course.grading.child import main; main()")
    child_argv = [sys.executable, "-s", "-E", "-c", bootstrap, str(child_sock.fileno())]
    if sandboxed:
        # The private /tmp comes first: binds after it may live under /tmp (a venv or checkout there).
        argv = [bwrap_path(), "--perms", "1777", "--tmpfs", "/tmp",
                *_ro_binds([(str(pkg_dir), f"{_PKG_MOUNT}/genai_course"), (str(work_dir), "/submission")]),
                "--proc", "/proc", "--dev", "/dev",
                *_bwrap_isolation(), "--die-with-parent", "--new-session",
                "--chdir", "/tmp", "--", *child_argv]
    else:
        warnings.warn("bubblewrap (bwrap) is not available: student code runs in a plain subprocess "
                      "WITHOUT filesystem or network isolation. Install bubblewrap for real grading.",
                      RuntimeWarning, stacklevel=2)
        argv = child_argv

    def preexec() -> None:
        os.setsid()
        cgroup.join()  # while still privileged
        for res, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_CPU, limits.cpu_seconds),
                           (resource.RLIMIT_FSIZE, limits.output_bytes), (resource.RLIMIT_NOFILE, limits.open_files),
                           (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(res, (value, value))
        if not cgroup.limits_pids:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                pass_fds=(child_sock.fileno(),), preexec_fn=preexec,
                                cwd=str(work_dir) if not sandboxed else None)
    except BaseException:
        cgroup.kill_all()
        parent_sock.close()
        raise
    finally:
        out.close()
        child_sock.close()
    return Sandbox(proc=proc, control=parent_sock, cgroup=cgroup, stdout_path=stdout_path, sandboxed=sandboxed,
                   mode=mode, expect_uid=user[0] if user else None)


def uids(pid: int) -> list[int] | None:
    """Real, effective, saved and filesystem uid of ``pid`` as the kernel reports them."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return [int(v) for v in line.split()[1:5]]
    except (OSError, ValueError):
        pass
    return None


# --- one-shot programs (HW3's pass@1: code a language model wrote) ----------------------------------------

@dataclass
class RunResult:
    """What one program did, observed from outside: ``status`` is "passed" (exit status 0), "failed"
    (another exit status: an assertion, an exception, ``sys.exit(1)``), or "timeout" (its CPU or wall
    time ran out; it was killed). ``output`` is the tail of its stdout+stderr."""
    status: str
    returncode: int | None
    seconds: float
    output: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


_PROC_MOUNT_WORKS: dict[tuple, bool] = {}


def _program_proc() -> list[str]:
    """``--proc /proc`` for run_python's sandbox where bwrap may mount a fresh procfs, else nothing.

    Inside another bwrap sandbox -- the grader's own, where HW3's hidden suite runs the student's
    ``pass_at_1`` -- the kernel refuses a new procfs (the outer /proc has read-only overmounts): bwrap
    would exit 1 before the program starts, and every program would look "failed". There the program
    runs without /proc; the namespaces, binds, private /tmp and limits are the same."""
    exe = bwrap_path()
    key = (exe, os.geteuid())
    if key not in _PROC_MOUNT_WORKS:
        try:
            proc = subprocess.run([exe, "--ro-bind", "/", "/", "--proc", "/proc", *_bwrap_isolation(),
                                   "--die-with-parent", "true"], capture_output=True, timeout=20)
            _PROC_MOUNT_WORKS[key] = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired, subprocess.SubprocessError):
            _PROC_MOUNT_WORKS[key] = False
    return ["--proc", "/proc"] if _PROC_MOUNT_WORKS[key] else []


def run_python(source: str, timeout: float = 5.0, memory_bytes: int = 1 << 30, output_bytes: int = 1 << 20) -> RunResult:
    """Run ``source`` as a Python program in a throw-away sandbox and report what happened.

    The same isolation as the grader's (bubblewrap when it works here: no network, a private /tmp, a
    read-only filesystem of the system and the Python installation only, the user ``nobody`` when run
    as root), and limits set from outside: ``timeout`` CPU seconds (RLIMIT_CPU; the wall-clock guard is
    4x that + 10 s, so a busy machine does not turn a correct program into a timeout), address space,
    output size, open files and processes. The program's exit status decides: it never reports on itself.
    Without bwrap it runs in a plain subprocess with the same limits and a warning.
    """
    if not isinstance(source, str):
        raise TypeError(f"run_python: source must be a str of Python code, got {type(source).__name__}")
    if timeout <= 0:
        raise ValueError(f"run_python: timeout must be > 0 seconds, got {timeout}")
    import tempfile

    limits = Limits()
    cpu = max(1, int(-(-timeout // 1)))  # RLIMIT_CPU counts whole seconds
    wall = limits.wall_guard(timeout)
    mode = bwrap_mode()
    user = _sandbox_user() if mode == "root" else None
    with tempfile.TemporaryDirectory(prefix="genai-run-") as tmp:
        prog = Path(tmp) / "program.py"
        prog.write_text(source, encoding="utf-8")
        os.chmod(tmp, 0o755)
        prog.chmod(0o644)
        drop = f"os.setgroups([]); os.setgid({user[1]}); os.setuid({user[0]}); " if user else ""
        runner = (f"import os, sys, runpy; {drop}sys.argv = ['program.py']; sys.path[0:0] = ['/tmp'];"
                  f"runpy.run_path({'/program/program.py' if mode else str(prog)!r}, run_name='__main__')")
        child = [sys.executable, "-I", "-c", runner]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
        if mode:
            argv = [bwrap_path(), "--perms", "1777", "--tmpfs", "/tmp", *_ro_binds([(tmp, "/program")]),
                    *_program_proc(), "--dev", "/dev", *_bwrap_isolation(), "--die-with-parent", "--new-session",
                    "--chdir", "/tmp", "--", *child]
        else:
            warnings.warn("bubblewrap (bwrap) is not available: the program runs in a plain subprocess WITHOUT "
                          "filesystem or network isolation. Install bubblewrap.", RuntimeWarning, stacklevel=2)
            argv = child

        def preexec() -> None:
            os.setsid()
            for res, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, output_bytes),
                               (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
                resource.setrlimit(res, (value, value))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at `cpu` s, SIGKILL a second later
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))

        out_path = Path(tmp) / "output.txt"
        start = time.perf_counter()
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=preexec, cwd=tmp if not mode else None)
            timed_out = False
            try:
                proc.wait(timeout=wall)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                for p in descendants(proc.pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        seconds = time.perf_counter() - start
        with open(out_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            output = f.read().decode("utf-8", "replace")
    rc = proc.returncode
    # Killed by its CPU limit: the signal, or bwrap's 128 + signal for it.
    if timed_out or rc in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return RunResult("timeout", None if timed_out else rc, seconds, output)
    return RunResult("passed" if rc == 0 else "failed", rc, seconds, output)
