"""Throughput and latency with N concurrent clients, through Triton (our backend) and through
dvtd, same machine, same run, alternating rounds. Each client is its own process with its own
connection, sending one Fashion-MNIST test image per request and waiting for the answer
(closed loop); latency is the client's round trip.

Both servers run the bundled cascade on the CPU with the same threads and the same thresholds
(no budget: the most accurate operating point), batches of up to 32:
    dvtd      --backend cpu --threads T --max-batch 32, Python client clients/python/dvtd_client.py
    triton    `dvt triton-repo --threads T` (max_batch_size 32), dynamic batcher without a window
              (the default written) and with a 500 us one, tritonclient[http] binary tensors

    $DVT_TRITON_VENV/bin/python triton/tools/bench_vs_dvtd.py [--clients 8] [--requests 400]
        [--rounds 3] [--threads 2] [--json out.json]

Paths as for the tests (triton/tests/harness.py), plus DVTD_BIN (default: the cargo target).
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import harness as H  # noqa: E402

sys.path.insert(0, str(H.ROOT / "clients" / "python"))
from dvtd_client import Client  # noqa: E402

WARMUP = 20


def dvtd_worker(socket_path, images, k, n, start, out):
    with Client(socket_path) as c:
        c.sock.settimeout(30)
        for i in range(WARMUP):
            c.classify(images[(k + i) % len(images)].tobytes(), 28, 28, 1)
        start.wait()
        lat = []
        t0 = time.perf_counter()
        for i in range(n):
            px = images[(k * n + i) % len(images)].tobytes()
            t = time.perf_counter()
            r = c.classify(px, 28, 28, 1)
            lat.append(time.perf_counter() - t)
            assert r.ok, r
        out.put((t0, time.perf_counter(), lat))


def triton_worker(address, model, images, k, n, start, out):
    import tritonclient.http as http
    c = http.InferenceServerClient(address, network_timeout=60)
    outs = [http.InferRequestedOutput(o, binary_data=True)
            for o in ("CLASS", "LABEL", "CONFIDENCE", "EXIT_STAGE", "GFLOPS")]

    def one(px):
        inp = http.InferInput("IMAGE", [1, 28, 28, 1], "UINT8")
        inp.set_data_from_numpy(px[None])
        r = c.infer(model, [inp], outputs=outs)
        return r.as_numpy("CLASS")

    for i in range(WARMUP):
        one(images[(k + i) % len(images)])
    start.wait()
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        px = images[(k * n + i) % len(images)]
        t = time.perf_counter()
        one(px)
        lat.append(time.perf_counter() - t)
    out.put((t0, time.perf_counter(), lat))
    c.close()


def measure(target, args, clients, n):
    ctx = mp.get_context("fork")
    start = ctx.Barrier(clients)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, k, n, start, out)) for k in range(clients)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0, f"client exited {p.exitcode}"
    t0 = min(r[0] for r in results)
    t1 = max(r[1] for r in results)
    lat = np.array([x for r in results for x in r[2]]) * 1e3
    return {
        "requests": int(lat.size),
        "images_per_s": lat.size / (t1 - t0),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "mean_ms": float(lat.mean()),
    }


def start_dvtd(tmp, threads):
    binary = os.environ.get("DVTD_BIN", str(H.target_dir() / "debug" / "dvtd"))
    sock = str(tmp / "dvtd.sock")
    log = open(tmp / "dvtd.log", "w")
    proc = subprocess.Popen([binary, "--socket", sock, "--bundle", str(H.BUNDLE), "--backend",
                             "cpu", "--threads", str(threads), "--max-batch", "32"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dvtd exited: " + (tmp / "dvtd.log").read_text()[-2000:])
        try:
            with Client(sock) as c:
                status = c.command("status")
                return proc, sock, status
        except OSError:
            time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    raise RuntimeError("dvtd did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=400, help="per client and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="server CPU threads")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    p, missing = H.paths()
    missing = [m for m in missing if not m.startswith("reference")]
    if missing:
        sys.exit("missing: " + "; ".join(missing))
    images, _ = H.fmnist_test(10000)
    images = np.ascontiguousarray(images)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        repo = tmp / "repo"
        H.write_model(p["dvt"], repo, "--threads", str(a.threads))
        H.write_model(p["dvt"], repo, "--name", "fmnist-dvt-500us", "--threads",
                      str(a.threads), "--queue-delay-us", "500")
        triton = H.Triton(p["server"], p["lib"], repo, tmp).start()
        dvtd, sock, status = start_dvtd(tmp, a.threads)
        systems = {
            "dvtd": (dvtd_worker, (sock, images)),
            "triton": (triton_worker, (triton.address(), "fmnist-dvt", images)),
            "triton, 500 us window": (triton_worker, (triton.address(), "fmnist-dvt-500us",
                                                      images)),
        }
        rounds = []
        try:
            for r in range(a.rounds):
                order = list(systems) if r % 2 == 0 else list(reversed(systems))
                row = {}
                for name in order:
                    target, args = systems[name]
                    row[name] = measure(target, args, a.clients, a.requests)
                    print(f"round {r + 1} {name}: {row[name]}", flush=True)
                rounds.append(row)
            stats = {"triton": triton.statistics("fmnist-dvt"),
                     "triton, 500 us window": triton.statistics("fmnist-dvt-500us")}
        finally:
            triton.stop()
            os.kill(dvtd.pid, signal.SIGTERM)
            dvtd.wait(timeout=30)
    summary = {}
    for name in systems:
        runs = [row[name] for row in rounds]
        summary[name] = {k: float(np.median([x[k] for x in runs]))
                         for k in ("images_per_s", "p50_ms", "p99_ms", "mean_ms")}
    for name, s in stats.items():
        # Over the whole run, warm-up included: images per execution.
        summary[name]["mean_batch"] = int(s["inference_count"]) / max(int(s["execution_count"]), 1)
    cpu = next((line.split(":", 1)[1].strip() for line in
                open("/proc/cpuinfo") if line.startswith("model name")), platform.machine())
    result = {
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "settings": vars(a), "dvtd_backend": status.get("backend"),
        "rounds": rounds, "median": summary,
    }
    base = summary["dvtd"]
    print(f"\n{a.clients} clients x {a.requests} requests x {a.rounds} rounds, {cpu}, "
          f"{os.cpu_count()} cores; medians over rounds")
    print("| server | images/s | p50 ms | p99 ms | images/s vs dvtd | p50 vs dvtd | "
          "p99 vs dvtd | images per execution |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        batch = f"{s['mean_batch']:.1f}" if "mean_batch" in s else ""
        print(f"| {name} | {s['images_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
              f"{s['images_per_s'] / base['images_per_s']:.2f}x | "
              f"{s['p50_ms'] / base['p50_ms']:.2f}x | {s['p99_ms'] / base['p99_ms']:.2f}x | "
              f"{batch} |")
    ranges = {name: {k: (min(r[name][k] for r in rounds), max(r[name][k] for r in rounds))
                     for k in ("images_per_s", "p50_ms", "p99_ms")} for name in systems}
    print("range over rounds:", json.dumps(ranges))
    result["range"] = ranges
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
