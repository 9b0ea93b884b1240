"""The `budget` parameter's parser: it must accept exactly what dvtd's own parser accepts
(src/policy/budget.rs), so the parameter callback can refuse a bad value at once."""

import pytest

from dvt_ros2.budget import BudgetError, parse_budget


@pytest.mark.parametrize("text, fields", [
    ("0.004gflops", {"kind": "gflops", "value": 0.004}),
    (" 4e-3 GFLOP ", {"kind": "gflops", "value": 0.004}),
    ("30ips", {"kind": "ips", "value": 30.0}),
    ("30fps", {"kind": "ips", "value": 30.0}),
    ("12.5img/s", {"kind": "ips", "value": 12.5}),
    ("5ms", {"kind": "ms", "value": 5.0}),
    ("3w", {"kind": "watts", "value": 3.0}),
    ("1E1 watts", {"kind": "watts", "value": 10.0}),
    (".5W", {"kind": "watts", "value": 0.5}),
    ("auto", {"kind": "auto"}),
    ("", None),
    ("  ", None),
])
def test_accepted(text, fields):
    assert parse_budget(text) == fields


@pytest.mark.parametrize("text, why", [
    ("3", "unknown unit ''"),
    ("3x", "unknown unit 'x'"),
    ("gflops", "not a budget"),
    ("0gflops", "positive"),
    ("-1ms", "positive"),
    ("1e999ms", "finite"),
    ("infms", "not a budget"),
    ("nanw", "not a budget"),
    ("1_000ips", "not a budget"),   # Python's float() takes it, the daemon does not
    ("0x10ms", "unknown unit 'x10ms'"),
])
def test_refused(text, why):
    with pytest.raises(BudgetError, match=why):
        parse_budget(text)
