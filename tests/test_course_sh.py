"""course.sh: which torch build it installs, and the JupyterLab it starts (as root, with the venv on
the PATH of its terminals). Nothing is installed: a fake interpreter records pip's arguments."""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.path.normpath(ROOT / os.environ.get("VENV", ".venv")))  # as course.sh resolves it
TORCH = "torch==2.13.0"


# ---- the torch install step (install_torch in course.sh) --------------------------------------

@pytest.fixture
def fake_tools(tmp_path: Path) -> Path:
    """bin/ with a `python` whose `-m pip`/`-m ipykernel` calls are logged to $PIP_LOG (and fail for
    --index-url when FAKE_INDEX_FAILS=1), plus `uname -s` = $FAKE_UNAME and an `nvidia-smi` that
    finds a GPU when FAKE_GPU=1. Everything else runs the real interpreter."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    scripts = {
        "python": f"""#!/bin/bash
if [ "$1" = -m ] && {{ [ "$2" = pip ] || [ "$2" = ipykernel ]; }}; then
  printf '%s\\n' "$*" >> "$PIP_LOG"
  if [ "${{FAKE_INDEX_FAILS:-0}}" = 1 ] && [[ " $* " == *" --index-url "* ]]; then exit 1; fi
  exit 0
fi
exec {sys.executable} "$@"
""",
        "uname": '#!/bin/sh\necho "${FAKE_UNAME:-Linux}"\n',
        "nvidia-smi": '#!/bin/sh\nif [ "${FAKE_GPU:-0}" = 1 ]; then echo "GPU 0: NVIDIA Fake (UUID: GPU-0)"; exit 0; fi\n'
                      'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2; exit 9\n',
    }
    for name, text in scripts.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    return bin_


class _Index(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cpu_index() -> Iterator[tuple[str, list[str]]]:
    """A local stand-in for https://download.pytorch.org/whl/cpu that answers HEAD requests."""
    handler = type("Index", (_Index,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu", handler.requests
    server.shutdown()


def install_torch(fake_tools: Path, index: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str], float]:
    """Run course.sh's install_torch with the fake interpreter; returns (process, pip calls, seconds)."""
    log = fake_tools.parent / "pip.log"
    log.unlink(missing_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_COURSE_TORCH")}
    full_env.update(PATH=f"{fake_tools}:{os.environ['PATH']}", PIP_LOG=str(log), GENAI_COURSE_TORCH_INDEX=index, **env)
    start = time.monotonic()
    proc = subprocess.run(["bash", "-c", 'source "$1" && install_torch "$2"', "install-torch",
                           str(ROOT / "course.sh"), str(fake_tools / "python")], env=full_env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls, time.monotonic() - start


@pytest.mark.parametrize("system, gpu, switch, cpu_build", [
    ("Linux", "0", None, True),       # a laptop without an NVIDIA GPU: CPU wheels, not gigabytes of CUDA
    ("Linux", "1", None, False),      # an NVIDIA GPU: PyPI's (CUDA) wheel
    ("Darwin", "0", None, False),     # macOS wheels on PyPI are CPU/MPS already
    ("Linux", "0", "cuda", False),    # asked for CUDA
    ("Linux", "1", "cpu", True),      # asked for CPU on a GPU machine
])
def test_install_torch_picks_the_build(fake_tools, cpu_index, system, gpu, switch, cpu_build):
    index, probes = cpu_index
    env = {"FAKE_UNAME": system, "FAKE_GPU": gpu, **({"GENAI_COURSE_TORCH": switch} if switch else {})}
    proc, calls, _ = install_torch(fake_tools, index, **env)
    assert proc.returncode == 0, proc.stderr
    expected = f"-m pip install --quiet {TORCH}" + (f" --index-url {index}" if cpu_build else "")
    assert calls == [expected]
    assert probes == (["/whl/cpu/torch/"] if cpu_build else [])  # no probe when it is not needed


def test_unreachable_cpu_index_falls_back_quickly(fake_tools):
    """An index that accepts the connection and never answers (the slow case: no quick refusal)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        index = f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu"
        proc, calls, seconds = install_torch(fake_tools, index, FAKE_UNAME="Linux")
    assert proc.returncode == 0, proc.stderr
    assert calls == [f"-m pip install --quiet {TORCH}"]
    assert "not reachable" in proc.stdout
    assert seconds < 15, f"fallback took {seconds:.1f} s"


def test_unknown_host_falls_back_at_once(fake_tools):
    proc, calls, seconds = install_torch(fake_tools, "http://download.pytorch.invalid/whl/cpu", FAKE_UNAME="Linux")
    assert proc.returncode == 0 and calls == [f"-m pip install --quiet {TORCH}"]
    assert seconds < 10


def test_failed_cpu_install_falls_back_to_pypi(fake_tools, cpu_index):
    index, _ = cpu_index
    proc, calls, _ = install_torch(fake_tools, index, FAKE_UNAME="Linux", FAKE_INDEX_FAILS="1")
    assert proc.returncode == 0
    assert calls == [f"-m pip install --quiet {TORCH} --index-url {index}", f"-m pip install --quiet {TORCH}"]
    assert "failed" in proc.stderr


def test_unknown_switch_is_an_error(fake_tools, cpu_index):
    proc, calls, _ = install_torch(fake_tools, cpu_index[0], GENAI_COURSE_TORCH="rocm")
    assert proc.returncode != 0 and calls == []
    assert "GENAI_COURSE_TORCH must be auto, cpu or cuda" in proc.stderr


def test_setup_installs_cpu_torch_before_the_package(fake_tools, cpu_index, tmp_path):
    """`bash course.sh setup` on a fresh Linux laptop: torch from the CPU index first, then the package."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(fake_tools / "python")
    (venv / "bin" / "genai-course").write_text('#!/bin/sh\necho "fake genai-course $*"\n')
    (venv / "bin" / "genai-course").chmod(0o755)
    index, _ = cpu_index
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_COURSE_TORCH")}
    env.update(PATH=f"{fake_tools}:{os.environ['PATH']}", PIP_LOG=str(tmp_path / "pip.log"), VENV=str(venv),
               GENAI_COURSE_TORCH_INDEX=index, FAKE_UNAME="Linux")
    proc = subprocess.run(["bash", str(ROOT / "course.sh"), "setup"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "pip.log").read_text().splitlines() == [
        "-m pip install --quiet --upgrade pip",
        f"-m pip install --quiet {TORCH} --index-url {index}",
        f"-m pip install --quiet -e .[{'course,test' if (ROOT / '.student-edition').is_file() else 'all'}]",
        "-m ipykernel install --sys-prefix --name python3",
    ]
    assert "fake genai-course data" in proc.stdout
    assert (venv / ".genai-course-installed").is_file()


# ---- JupyterLab as course.sh starts it --------------------------------------------------------

class Lab(NamedTuple):
    url: str
    token: str
    pid: int

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""


@contextmanager
def running_lab(root: Path, env: dict[str, str], tmp: Path, timeout: float = 90) -> Iterator[Lab]:
    """Start `lab` of root/course.sh (no set-up) on a free loopback port; stop it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**env, "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime")}
    log_path = tmp / "lab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["bash", "-c", 'source ./course.sh && lab "$@"', "lab", "--no-browser",
                                 f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
                                 f"--IdentityProvider.token={token}"],
                                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, proc.pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                if lab.get("/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab did not answer in {timeout} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield lab
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def in_terminal(lab: Lab, command: str, cwd: str | None = None, timeout: float = 180) -> str:
    """Type `command` into a new JupyterLab terminal (opened in `cwd`, as the launcher of a folder
    does) and return what the terminal shows until the command finishes."""
    from tornado.websocket import websocket_connect

    req = urllib.request.Request(f"{lab.url}/api/terminals?token={lab.token}", method="POST",
                                 data=json.dumps({"cwd": cwd} if cwd else {}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        name = json.load(r)["name"]

    async def talk() -> str:
        ws = await websocket_connect(f"{lab.url.replace('http', 'ws', 1)}/terminals/websocket/{name}?token={lab.token}")
        await ws.write_message(json.dumps(["stdin", f'{command}; echo "EXIT=$?"\r']))
        shown, deadline = "", time.monotonic() + timeout
        while not re.search(r"EXIT=\d", shown):
            msg = await asyncio.wait_for(ws.read_message(), timeout=max(1.0, deadline - time.monotonic()))
            if msg is None:
                break
            kind, *payload = json.loads(msg)
            if kind == "stdout":
                shown += payload[0]
        ws.close()
        return shown

    try:
        return asyncio.run(talk())
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{lab.url}/api/terminals/{name}?token={lab.token}",
                                                      method="DELETE"), timeout=10).close()


@pytest.fixture(scope="module")
def course_lab(tmp_path_factory) -> Iterator[Lab]:
    """The course's lab, started the way `bash course.sh` starts it, from a shell whose PATH does
    not have the venv (nobody activated it) -- as root when the tests run as root."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "JUPYTER_CONFIG_PATH")}
    env["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                  if Path(p).resolve() != (VENV / "bin").resolve())
    with running_lab(ROOT, env, tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@pytest.mark.slow
def test_lab_starts_and_answers_on_loopback(course_lab):
    status, body = course_lab.get("/lab")
    assert status == 200 and "JupyterLab" in body
    cmdline = Path(f"/proc/{course_lab.pid}/cmdline").read_bytes().split(b"\0")
    assert (b"--allow-root" in cmdline) == (os.getuid() == 0)  # root: Docker, WSL, cloud VMs


@pytest.mark.slow
def test_lab_terminal_runs_genai_course_check_in_the_notebook_folder(course_lab):
    shown = in_terminal(course_lab, 'echo "VENV=$VIRTUAL_ENV"; command -v genai-course python; '
                                    'genai-course check hw0.ipynb', cwd="homework/hw0")
    assert f"VENV={VENV}" in shown
    assert f"{VENV}/bin/genai-course" in shown and f"{VENV}/bin/python" in shown  # not ~/.bashrc's conda/pyenv
    assert "command not found" not in shown and "does not exist" not in shown
    assert "Public checks of HW0 on hw0.ipynb" in shown and "public checks pass" in shown
