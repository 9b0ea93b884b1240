"""The node and the daemon's life: the budget parameter as dvtd sees it (`dvt ctl status`), and
the daemon killed, restarted, or hung while the node keeps serving its executor."""

import os
import signal
import time

import pytest

import harness as H


def ctl_budget(dvtd):
    return H.ctl_status(dvtd.socket)["budget"]


def publish_and_check(probe, dvtd, tag, n=8, timeout=10.0, compare=True):
    """n images one by one; every one gets a result, equal to the daemon's direct answer
    (`compare`: not under a budget, where dvtd draws each frame's operating point at random)."""
    images = H.fmnist_images(n)
    for i, (px, _) in enumerate(images):
        probe.publish(probe.image(f"{tag}-{i}", px, 28, 28, "mono8"))
        assert probe.wait_results([f"{tag}-{i}"], timeout) == 1, f"no result for {tag}-{i}"
    if not compare:
        return
    for i, want in enumerate(dvtd.answers([(px, 28, 28, 1) for px, _ in images])):
        got = probe.results[f"{tag}-{i}"]
        assert (got.class_id, got.exit_stage) == (want.class_id, want.exit_stage)
        assert got.confidence == pytest.approx(want.confidence, abs=1e-5)


def test_budget_parameter_drives_dvtd(start_node, dvtd):
    assert ctl_budget(dvtd) is None  # source "none": nobody set one yet
    # Started through the console script, with an initial budget.
    node, probe = start_node("budget", console_script=True, budget="0.004gflops")
    H.wait_for(lambda: ctl_budget(dvtd) == {"kind": "gflops", "value": 0.004}, 10,
               "the initial budget in dvt ctl status")
    params = H.ParamClient(probe.node, "/budget/budget")

    r = params.set("budget", "30ips")
    assert r.successful, r.reason
    H.wait_for(lambda: ctl_budget(dvtd) == {"kind": "ips", "value": 30.0}, 5, "30ips")

    # Bad values are refused in the parameter callback, with the reason; nothing changes.
    for bad, why in (("banana", "not a budget"), ("0gflops", "positive"), ("3x", "unit")):
        r = params.set("budget", bad)
        assert not r.successful and why in r.reason, (bad, r.reason)
    assert params.get("budget").string_value == "30ips"
    for bad in (0, 65, True):
        r = params.set("max_in_flight", bad)
        assert not r.successful, bad
    assert params.set("max_in_flight", 4).successful
    assert not params.set("socket", "/elsewhere.sock").successful  # read-only

    assert params.set("budget", "3w").successful
    H.wait_for(lambda: ctl_budget(dvtd) == {"kind": "watts", "value": 3.0}, 5, "3w")
    diag = probe.wait_diag(lambda s: H.diag_values(s)["budget_param"] == "3w", 5, "3w in /diagnostics")
    assert H.diag_values(diag)["max_in_flight"] == "4"

    # auto hands control back to the daemon's configured source (none: no budget).
    assert params.set("budget", "auto").successful
    H.wait_for(lambda: ctl_budget(dvtd) is None, 5, "auto")
    assert H.ctl_status(dvtd.socket)["budget_source"] is not None
    publish_and_check(probe, dvtd, "after-auto")


def test_bad_initial_budget_stops_the_node_with_one_line(tmp_path, ros_node, dvtd):
    node = H.NodeProcess(tmp_path, "badbudget", {"socket": dvtd.socket, "budget": "fast"})
    assert node.proc.wait(30) == 2
    out = node.output()
    assert "'fast': not a budget" in out and "Traceback" not in out, out


def test_daemon_killed_and_restarted(start_node, dvtd):
    node, probe = start_node("restart", budget="0.004gflops")
    H.wait_for(lambda: ctl_budget(dvtd) == {"kind": "gflops", "value": 0.004}, 10, "budget")
    params = H.ParamClient(probe.node, "/restart/restart")
    publish_and_check(probe, dvtd, "before", n=3, compare=False)

    dvtd.kill()  # SIGKILL: no drain, the socket file stays behind
    err = probe.wait_diag(lambda s: s.level == H.ERROR, 5, "ERROR diagnostics")
    assert "dvtd unreachable" in err.message and H.diag_values(err)["dvtd_reachable"] == "false"
    # The node keeps running, answers its parameter service and publishes diagnostics.
    t0 = time.monotonic()
    assert params.get("budget").string_value == "0.004gflops"
    assert time.monotonic() - t0 < 2.0
    for i, (px, _) in enumerate(H.fmnist_images(5)):
        probe.publish(probe.image(f"during-{i}", px, 28, 28, "mono8"))
    d = probe.wait_diag(lambda s: probe.counters(s)["dropped_disconnected"] >= 5, 5,
                        "frames counted dropped while dvtd is away")
    assert d.level == H.ERROR and node.alive()
    assert not any(f.startswith("during") for f in probe.results)

    dvtd.start()  # a fresh daemon on the same socket: knows nothing of the node's budget
    ok = probe.wait_diag(lambda s: s.level != H.ERROR, 10, "recovery after restart")
    assert H.diag_values(ok)["reconnects"] == "1"
    # The node re-applies its budget to the new daemon.
    H.wait_for(lambda: ctl_budget(dvtd) == {"kind": "gflops", "value": 0.004}, 5,
               "the budget re-applied after the restart")
    assert params.set("budget", "auto").successful
    H.wait_for(lambda: ctl_budget(dvtd) is None, 5, "auto")
    publish_and_check(probe, dvtd, "after")


def test_hung_daemon_never_blocks_the_executor(start_node, dvtd):
    node, probe = start_node("hang")
    params = H.ParamClient(probe.node, "/hang/hang")
    publish_and_check(probe, dvtd, "pre", n=3)
    os.kill(dvtd.proc.pid, signal.SIGSTOP)  # a real daemon that stops answering anything
    try:
        images = H.fmnist_images(3)
        for i, (px, _) in enumerate(images):
            probe.publish(probe.image(f"hung-{i}", px, 28, 28, "mono8"))
        # While the link thread waits on the daemon, the executor stays free: parameter calls
        # answer at once and diagnostics keep their 1 s period.
        t_stop = time.monotonic()
        for _ in range(3):
            t0 = time.monotonic()
            assert params.get("max_in_flight").integer_value == 2
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.5)
        err = probe.wait_diag(lambda s: s.level == H.ERROR, 15, "ERROR for a hung daemon")
        assert "dvtd unreachable" in err.message
        with probe.lock:
            times = [t for t, _ in probe.diagnostics if t >= t_stop]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert gaps and max(gaps) < 1.8, gaps
    finally:
        os.kill(dvtd.proc.pid, signal.SIGCONT)
    probe.wait_diag(lambda s: s.level != H.ERROR, 15, "recovery after SIGCONT")
    publish_and_check(probe, dvtd, "post", n=3)
