"""A real Triton server (the nvidia-pytriton wheel's tritonserver 2.51) with our backend, for the
tests and the benchmark: model repositories written by `dvt triton-repo`, free loopback ports,
bounded start and stop, the process stopped by its PID.

Where things are (tools/test.sh sets them; defaults: the cargo target dir, triton/env.sh's
cache):
    DVT_BIN                 the `dvt` binary
    DVT_TRITON_LIB          libtriton_dvt.so
    DVT_TRITON_REFERENCE    the `reference` example (answers computed as `dvt eval` does)
    DVT_TRITON_SERVER       the unpacked nvidia-pytriton wheel
    DVT_REQUIRE_TRITON=1    a missing piece fails the tests instead of skipping them
"""

import gzip
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "engines" / "fmnist-dvt"
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def paths():
    """The pieces the tests need, and which of them are missing."""
    t = target_dir() / "debug"
    p = {
        "dvt": Path(os.environ.get("DVT_BIN", t / "dvt")),
        "lib": Path(os.environ.get("DVT_TRITON_LIB", t / "libtriton_dvt.so")),
        "reference": Path(os.environ.get("DVT_TRITON_REFERENCE", t / "examples" / "reference")),
        "server": Path(os.environ.get("DVT_TRITON_SERVER",
                                      "/var/cache/dvt-edge/pytriton/nvidia-pytriton-0.7.0")),
        "data": FMNIST / "t10k-images-idx3-ubyte.gz",
    }
    missing = [f"{k}: {v}" for k, v in p.items()
               if not (v / "pytriton" if k == "server" else v).exists()]
    return p, missing


def fmnist_test(n=10000):
    """The first n Fashion-MNIST test images [n, 28, 28, 1] (u8) and labels."""
    raw = gzip.open(FMNIST / "t10k-images-idx3-ubyte.gz").read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n]
    labels = np.frombuffer(gzip.open(FMNIST / "t10k-labels-idx1-ubyte.gz").read(), np.uint8,
                           offset=8)[:n]
    return images, labels


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_model(dvt, repo, *args):
    """`dvt triton-repo --bundle BUNDLE --out repo ARGS`."""
    subprocess.run([str(dvt), "triton-repo", "--bundle", str(BUNDLE), "--out", str(repo), *args],
                   check=True, capture_output=True, text=True, timeout=60)


class Triton:
    """tritonserver on 127.0.0.1 with `backends/dvt/libtriton_dvt.so` and `repo`."""

    def __init__(self, server, lib, repo, workdir, extra=()):
        self.server = Path(server)
        self.repo = Path(repo)
        self.workdir = Path(workdir)
        backends = self.workdir / "backends" / "dvt"
        backends.mkdir(parents=True, exist_ok=True)
        link = backends / "libtriton_dvt.so"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(lib).resolve())
        self.backends = backends.parent
        self.extra = list(extra)
        self.proc = None
        self.clients = []
        self.log_path = self.workdir / "tritonserver.log"
        self.http_port = self.metrics_port = None

    def start(self, timeout=120):
        self.http_port, self.metrics_port = free_port(), free_port()
        env = dict(os.environ)
        # The wheel's RPATHs assume its own layout: its libraries come from here.
        env["LD_LIBRARY_PATH"] = str(self.server / "nvidia_pytriton.libs")
        cmd = [str(self.server / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
               f"--model-repository={self.repo}", f"--backend-directory={self.backends}",
               "--http-address=127.0.0.1", f"--http-port={self.http_port}",
               "--allow-grpc=false",
               "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
               "--allow-gpu-metrics=false", "--exit-timeout-secs=20", *self.extra]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(self.url("/v2/health/ready"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"tritonserver not ready after {timeout} s:\n" + self.log_tail())

    def url(self, path, metrics=False):
        port = self.metrics_port if metrics else self.http_port
        return f"http://127.0.0.1:{port}{path}"

    def address(self):
        return f"127.0.0.1:{self.http_port}"

    def client(self, **kw):
        """A new HTTP client (closed by `stop`: Triton's shutdown waits for open connections)."""
        import tritonclient.http as http
        c = http.InferenceServerClient(self.address(), connection_timeout=30,
                                       network_timeout=60, **kw)
        self.clients.append(c)
        return c

    def metrics(self):
        with urllib.request.urlopen(self.url("/metrics", metrics=True), timeout=10) as r:
            return r.read().decode()

    def statistics(self, model):
        with urllib.request.urlopen(self.url(f"/v2/models/{model}/stats"), timeout=10) as r:
            return json.load(r)["model_stats"][0]

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self, timeout=40):
        """SIGTERM by PID, wait; returns the exit status (SIGKILL and an error past timeout)."""
        for c in self.clients:
            c.close()
        self.clients.clear()
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"tritonserver ignored SIGTERM for {timeout} s:\n"
                               + self.log_tail())
        finally:
            self.log.close()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def metric_values(text, name):
    """{labels string: value} of metric `name` in Prometheus text."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name):].rsplit(" ", 1)
            out[labels] = float(value)
    return out
