"""One line per benchmark target, in one format, so that ``make bench`` can run every benchmark and
say at the end which targets were missed (a benchmark exits 1 when any of its targets is missed)."""
from __future__ import annotations


def report(name: str, ratio: float, peer: str, target: str, met: bool) -> bool:
    """Print ``target <name>: <ratio> against <peer> (target <target>): met|MISSED`` and return ``met``."""
    print(f"target {name}: {ratio:.2f} against {peer} (target {target}): {'met' if met else 'MISSED'}", flush=True)
    return met
