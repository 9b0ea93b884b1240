"""The dvt backend inside a real Triton 2.51 server (the nvidia-pytriton wheel), on loopback,
driven by tritonclient over HTTP with real Fashion-MNIST test images. tools/test.sh runs it:

    $DVT_TRITON_VENV/bin/python -m pytest -q triton/tests

Models (written by `dvt triton-repo`, one server for the module):
    fmnist-dvt         point frontier-05, 2 ms batching window: answers vs `dvt eval`
    fmnist-dvt-slow    point frontier-05, 300 ms window: a burst lands in one execution
    fmnist-dvt-budget  no point (most accurate until a budget is set), 2 instances: the budget
                       parameter
"""

import json
import os
import subprocess
import threading
import tomllib

import numpy as np
import pytest

import harness as H

PATHS, MISSING = H.paths()
if MISSING:
    if os.environ.get("DVT_REQUIRE_TRITON") == "1":
        raise RuntimeError("Triton test kit incomplete (run tools/setup.sh and build "
                           "triton-dvt): " + "; ".join(MISSING))
    pytest.skip("Triton test kit incomplete: " + "; ".join(MISSING), allow_module_level=True)

import tritonclient.http as http  # noqa: E402 (after the skip: the venv may lack it)
from tritonclient.utils import InferenceServerException  # noqa: E402

POINT = "frontier-05"
N = 1000
OUTPUTS = ["CLASS", "LABEL", "CONFIDENCE", "EXIT_STAGE", "GFLOPS"]
MANIFEST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def data():
    return H.fmnist_test(N)


@pytest.fixture(scope="module")
def reference():
    """Per-image answers at POINT, computed like `dvt eval` (Cascade, one image per call)."""
    out = subprocess.run([str(PATHS["reference"]), str(H.BUNDLE), POINT, str(N)], check=True,
                         capture_output=True, text=True, timeout=300)
    ref = json.loads(out.stdout)
    return ref


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("triton")
    repo = tmp / "repo"
    dvt = PATHS["dvt"]
    common = ["--threads", "2"]
    H.write_model(dvt, repo, "--point", POINT, "--queue-delay-us", "2000", *common)
    H.write_model(dvt, repo, "--name", "fmnist-dvt-slow", "--point", POINT,
                  "--queue-delay-us", "300000", *common)
    H.write_model(dvt, repo, "--name", "fmnist-dvt-budget", "--instances", "2", *common)
    t = H.Triton(PATHS["server"], PATHS["lib"], repo, tmp).start()
    yield t
    rc = t.stop()
    assert rc == 0, "tritonserver did not stop cleanly:\n" + t.log_tail()
    assert "Exit timeout expired" not in t.log_text(), t.log_tail()


def image_input(pixels):
    inp = http.InferInput("IMAGE", list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(np.ascontiguousarray(pixels))
    return inp


def infer(client, model, pixels, **kw):
    outs = [http.InferRequestedOutput(n) for n in OUTPUTS]
    r = client.infer(model, [image_input(pixels)], outputs=outs, **kw)
    answers = [(int(c), int(e), float(p), float(g)) for c, e, p, g in
               zip(r.as_numpy("CLASS")[:, 0], r.as_numpy("EXIT_STAGE")[:, 0],
                   r.as_numpy("CONFIDENCE")[:, 0], r.as_numpy("GFLOPS")[:, 0])]
    labels = [b.decode() for b in r.as_numpy("LABEL")[:, 0]]
    return answers, labels, r.get_response().get("parameters", {})


def assert_same(got, want, where, conf_tol=1e-5):
    """Class, exit stage and GFLOPs exactly; confidence to a few ULPs (ONNX Runtime's kernels
    differ by batch size in the last bits of a logit)."""
    c, e, p, g = got
    wc, we, wp, wg = want
    assert (c, e) == (wc, we), f"{where}: class/exit {(c, e)} != dvt's {(wc, we)}"
    assert abs(p - wp) < conf_tol, f"{where}: confidence {p} != dvt's {wp}"
    assert np.float32(g) == np.float32(wg), f"{where}: gflops {g} != dvt's {wg}"


def run_concurrently(jobs, clients):
    """Runs `jobs` (callables taking a client) on one thread per client in `clients` (each its
    own HTTP connection: tritonclient's sync client is not shared across threads); returns
    their results, or the exceptions they raised, in job order."""
    results = [None] * len(jobs)
    lock = threading.Lock()
    queue = list(enumerate(jobs))

    def worker(c):
        while True:
            with lock:
                if not queue:
                    return
                i, job = queue.pop(0)
            try:
                results[i] = job(c)
            except Exception as e:  # noqa: BLE001 (the test inspects it)
                results[i] = e

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a client thread hung"
    return results


def test_answers_equal_dvt_eval_under_concurrent_clients(server, data, reference):
    images, labels = data
    before = server.statistics("fmnist-dvt")
    clients = [server.client() for _ in range(8)]
    jobs = [lambda c, i=i: infer(c, "fmnist-dvt", images[i:i + 1]) for i in range(N)]
    results = run_concurrently(jobs, clients)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    for i, (answers, names, params) in enumerate(results):
        assert_same(answers[0], reference["answers"][i], f"image {i}")
        assert names == [MANIFEST_CLASSES[answers[0][0]]]
        assert params["budget"] == f"point {POINT}"
    # The same images through `dvt eval --point` itself: the aggregates must match too.
    ev = json.loads(subprocess.run(
        [str(PATHS["dvt"]), "eval", "--bundle", str(H.BUNDLE), "--point", POINT,
         "--limit", str(N), "--backend", "cpu", "--json"],
        check=True, capture_output=True, text=True, timeout=300).stdout)
    classes = np.array([r[0][0][0] for r in results])
    exits = np.array([r[0][0][1] for r in results])
    assert (classes == labels).mean() == pytest.approx(ev["accuracy"], abs=1e-12)
    fractions = [(exits == k + 1).mean() for k in range(3)]
    assert fractions == pytest.approx(ev["exit_fractions"], abs=1e-12)
    gflops = np.mean([r[0][0][3] for r in results])
    assert gflops == pytest.approx(ev["mean_gflops"], rel=1e-6)
    # Triton's dynamic batcher grouped concurrent requests: executions with more than one.
    after = server.statistics("fmnist-dvt")
    assert int(after["inference_count"]) - int(before["inference_count"]) == N
    executions = int(after["execution_count"]) - int(before["execution_count"])
    batched = [b for b in after["batch_stats"] if int(b["batch_size"]) > 1]
    assert batched, after["batch_stats"]
    assert executions < N, f"{executions} executions for {N} requests: no batching"


def test_many_images_per_request_and_any_size(server, data, reference):
    images, _ = data
    c = server.client()
    want = reference["answers"]
    answers, _, _ = infer(c, "fmnist-dvt", images[:5])
    for i in range(5):
        assert_same(answers[i], want[i], f"request of 5, image {i}")
    # 2x pixel replication: the antialiased (PIL/torchvision) resize back to 28x28 blends
    # neighbours, so the pixels are close to the originals but not equal: the same classes (an
    # image near a threshold may exit one stage later).
    big = images[:10].repeat(2, axis=1).repeat(2, axis=2)
    answers, _, _ = infer(c, "fmnist-dvt", big)
    assert [a[0] for a in answers] == [w[0] for w in want[:10]]
    # Grey as RGB goes through the luma weights (0.299 + 0.587 + 0.114): a rounding apart.
    rgb = images[:10].repeat(3, axis=3)
    answers, _, _ = infer(c, "fmnist-dvt", rgb)
    for i in range(10):
        assert_same(answers[i], want[i], f"RGB image {i}", conf_tol=1e-4)
    rgba = np.concatenate([rgb, np.full((10, 28, 28, 1), 255, np.uint8)], axis=3)
    answers, _, _ = infer(c, "fmnist-dvt", rgba)
    assert [a[:2] for a in answers] == [tuple(w[:2]) for w in want[:10]]
    # Different sizes in one execution (allow_ragged_batch): a burst on the slow model.
    before = server.statistics("fmnist-dvt-slow")
    shapes = [images[i:i + 1] if i % 2 else images[i:i + 1].repeat(3, axis=1).repeat(3, axis=2)
              for i in range(6)]
    results = run_concurrently([lambda c, p=p: infer(c, "fmnist-dvt-slow", p) for p in shapes],
                               [server.client() for _ in range(6)])
    for i, r in enumerate(results):
        assert not isinstance(r, Exception), r
        assert r[0][0][:2] == tuple(want[i][:2]), f"ragged batch, image {i}"
    after = server.statistics("fmnist-dvt-slow")
    assert int(after["execution_count"]) - int(before["execution_count"]) < 6


def test_a_bad_request_fails_alone_and_the_next_succeeds(server, data, reference):
    images, _ = data
    want = reference["answers"]
    good = [lambda c, i=i: infer(c, "fmnist-dvt-slow", images[i:i + 1]) for i in range(8)]
    bad = [
        lambda c: infer(c, "fmnist-dvt-slow", np.zeros((1, 28, 28, 2), np.uint8)),
        lambda c: infer(c, "fmnist-dvt-slow", images[:1], parameters={"budget": "fast"}),
        lambda c: infer(c, "fmnist-dvt-slow", np.zeros((2, 28, 28, 5), np.uint8)),
    ]
    before = server.statistics("fmnist-dvt-slow")
    rejected0 = sum(H.metric_values(server.metrics(), "dvt_rejected_requests_total").values())
    jobs = good[:4] + bad + good[4:]
    results = run_concurrently(jobs, [server.client() for _ in range(len(jobs))])
    after = server.statistics("fmnist-dvt-slow")
    # The 300 ms window put good and bad requests in the same execution(s).
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert executions <= 3, f"{executions} executions for {len(jobs)} requests"
    for k, r in enumerate(results[:4] + results[7:]):
        assert not isinstance(r, Exception), f"good request {k} failed: {r}"
        assert_same(r[0][0], want[k], f"good request {k}")
    messages = [str(r) for r in results[4:7]]
    assert all(isinstance(r, InferenceServerException) for r in results[4:7]), messages
    assert "cannot make 1-channel model input from 2-channel pixels" in messages[0]
    assert "request parameter budget" in messages[1]
    assert "5-channel" in messages[2]
    rejected = sum(H.metric_values(server.metrics(), "dvt_rejected_requests_total").values())
    assert rejected - rejected0 == 3
    c = server.client()
    assert infer(c, "fmnist-dvt-slow", images[:1])[0][0][:2] == tuple(want[0][:2])
    # Malformed for Triton itself (wrong type, no batch dimension): refused before the backend,
    # and the next request is served.
    f32 = http.InferInput("IMAGE", [1, 28, 28, 1], "FP32")
    f32.set_data_from_numpy(np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(InferenceServerException, match="(?i)data.?type|FP32|UINT8"):
        c.infer("fmnist-dvt", [f32])
    with pytest.raises(InferenceServerException):
        c.infer("fmnist-dvt", [image_input(images[0])])  # [28, 28, 1]: no batch dimension
    assert infer(c, "fmnist-dvt", images[1:2])[0][0][:2] == tuple(want[1][:2])


def point_thresholds(name):
    """The bundle's thresholds of operating point `name`, as the runtime holds them (f32)."""
    with open(H.BUNDLE / "manifest.toml", "rb") as f:
        points = tomllib.load(f)["operating_points"]
    return [np.float32(t) for t in next(p for p in points if p["name"] == name)["thresholds"]]


def test_budget_parameter_sets_the_model_budget(server, data):
    images, _ = data
    c = server.client()
    batch = images[:32]

    def run(**kw):
        answers, _, params = infer(c, "fmnist-dvt-budget", batch, **kw)
        return np.mean([a[3] for a in answers]), [a[1] for a in answers], params

    g_best, _, p = run()
    assert p["budget"] == "none"
    # A budget set by one request holds for the following ones (it is the model's).
    g, _, p = run(parameters={"budget": "0.002gflops"})
    assert p["budget"] == "0.002gflops"
    g_cheap, exits, p = run()
    assert p["budget"] == "0.002gflops"
    assert g_cheap < g_best / 2, (g_cheap, g_best)
    assert exits.count(1) >= 24, exits
    # Both instances follow it (a budget is the model's, not one instance's).
    results = run_concurrently([lambda c, i=i: infer(c, "fmnist-dvt-budget", images[i:i + 1])
                                for i in range(32)], [server.client() for _ in range(8)])
    assert {r[2]["budget"] for r in results} == {"0.002gflops"}, results[:2]
    instances = {}
    for line in server.log_text().splitlines():
        if "instance fmnist-dvt-budget_" in line and "answering with" in line:
            instances[line.split("instance ")[1].split(" ")[0]] = True
    assert len(instances) == 2, instances
    with pytest.raises(InferenceServerException, match="request parameter budget"):
        run(parameters={"budget": "-1ms"})
    assert run()[2]["budget"] == "0.002gflops", "a refused budget must not change the budget"
    assert run(parameters={"budget": "none"})[2]["budget"] == "none"
    # "default" returns to the config's choice: the pinned point on the slow model.
    infer(c, "fmnist-dvt-slow", images[:1], parameters={"budget": "0.01gflops"})
    assert infer(c, "fmnist-dvt-slow", images[:1])[2]["budget"] == "0.01gflops"
    p = infer(c, "fmnist-dvt-slow", images[:1], parameters={"budget": "default"})[2]
    assert p["budget"] == f"point {POINT}"
    assert [np.float32(t) for t in p["thresholds"].split(",")] == point_thresholds(POINT)


def test_custom_metrics_count_exits_and_gflops(server, data):
    images, _ = data
    labels = 'model="fmnist-dvt",version="1"'

    def read():
        text = server.metrics()
        exits = H.metric_values(text, "dvt_cascade_exits_total")
        per_stage = [exits.get('{' + labels.replace(',version', f',stage="{k}",version') + '}',
                               None) for k in (1, 2, 3)]
        gflops = H.metric_values(text, "dvt_cascade_gflops_total")['{' + labels + '}']
        return text, per_stage, gflops

    text0, exits0, gflops0 = read()
    assert None not in exits0, text0
    answers, _, _ = infer(server.client(), "fmnist-dvt", images[100:130])
    text1, exits1, gflops1 = read()
    seen = [sum(1 for a in answers if a[1] == k) for k in (1, 2, 3)]
    assert [b - a for a, b in zip(exits0, exits1)] == seen
    assert gflops1 - gflops0 == pytest.approx(sum(a[3] for a in answers), rel=1e-5)
    # Next to Triton's own.
    assert 'nv_inference_count{model="fmnist-dvt",version="1"}' in text1
    assert "# TYPE dvt_cascade_exits_total counter" in text1


def test_clean_shutdown_and_a_broken_model_named(tmp_path, data):
    """Own server: a good model and one whose config names a point the bundle lacks. The
    broken one says why and does not take the good one down; SIGTERM ends the server with
    status 0 after every instance, model and the backend finalized."""
    images, _ = data
    repo = tmp_path / "repo"
    H.write_model(PATHS["dvt"], repo, "--threads", "1")
    H.write_model(PATHS["dvt"], repo, "--name", "broken", "--threads", "1")
    cfg = repo / "broken" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace('key: "point" value: { string_value: "" }',
                                           'key: "point" value: { string_value: "fastest" }'))
    t = H.Triton(PATHS["server"], PATHS["lib"], repo, tmp_path,
                 extra=["--exit-on-error=false", "--strict-readiness=false"]).start()
    try:
        index = {m["name"]: m for m in t.client().get_model_repository_index()}
        assert index["fmnist-dvt"]["state"] == "READY", index
        assert index["broken"]["state"] == "UNAVAILABLE", index
        assert "no operating point 'fastest'" in index["broken"]["reason"], index
        infer(t.client(), "fmnist-dvt", images[:2])
    finally:
        rc = t.stop()
    assert rc == 0, t.log_tail()
    log = t.log_text()
    assert "Exit timeout expired" not in log, t.log_tail()
    for line in ["dvt: instance fmnist-dvt_0_0 finalized", "dvt: model fmnist-dvt version 1 "
                 "finalized", "dvt: backend finalized"]:
        assert line in log, line + "\n" + t.log_tail()
    assert "panic" not in log
