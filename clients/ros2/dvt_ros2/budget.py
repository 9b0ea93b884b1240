"""The `budget` parameter: the strings `dvt ctl set-budget` takes, turned into the fields of the
daemon's `set-budget` control line (docs/protocol.md).

Parsing follows the daemon's own `Budget::from_str` (src/policy/budget.rs) so that a value the
parameter callback accepts is one the daemon accepts too, and a bad one is refused at once, in
the callback, rather than later by the daemon where the caller no longer sees it.
"""

import math
import re

# The number: what Rust's f64 parser takes before the unit (no inf/nan: they start with a
# letter, which the daemon reads as the unit, so it refuses them too).
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

# unit spelling -> the control line's `kind`
_UNITS = {
    "gflops": "gflops", "gflop": "gflops",
    "ips": "ips", "fps": "ips", "img/s": "ips",
    "ms": "ms",
    "w": "watts", "watt": "watts", "watts": "watts",
}

UNMANAGED = ""
AUTO = "auto"


class BudgetError(ValueError):
    """Not a budget the daemon would take."""


def parse_budget(text):
    """`""` -> None (the node leaves the daemon's budget alone), `auto` -> {"kind": "auto"}
    (hand control back to the daemon's configured source), `0.004gflops`, `30ips` / `30fps`,
    `5ms`, `3w` -> {"kind": ..., "value": ...}. Raises BudgetError naming what is wrong."""
    s = text.strip()
    if s == UNMANAGED:
        return None
    if s.lower() == AUTO:
        return {"kind": "auto"}
    # As the daemon does: the unit starts at the first letter that is not an exponent's e.
    split = next((i for i, c in enumerate(s) if c.isascii() and c.isalpha() and c not in "eE"),
                 len(s))
    num, unit = s[:split].strip(), s[split:].strip().lower()
    if not _NUMBER.fullmatch(num):
        raise BudgetError(f"'{text}': not a budget (e.g. 0.004gflops, 30ips, 5ms, 3w or auto)")
    kind = _UNITS.get(unit)
    if kind is None:
        raise BudgetError(f"'{text}': unknown unit '{unit}' (units: gflops, ips, ms, w; or auto)")
    value = float(num)
    if not (math.isfinite(value) and value > 0):
        raise BudgetError(f"'{text}': a budget must be positive and finite")
    return {"kind": kind, "value": value}


def describe(status_budget):
    """The daemon's status `budget` ({kind, value} or None) as one short string."""
    if not status_budget:
        return "none (most accurate point)"
    return f"{status_budget.get('value')} {status_budget.get('kind')}"
