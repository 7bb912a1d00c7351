"""`rotator verify`: every target holds the same current key, and Bluum accepts it. Changes nothing, takes no lease."""

from __future__ import annotations

from rotator.core.errors import ExitCode
from rotator.rotation import preflight
from rotator.rotation.context import RotationContext
from rotator.rotation.driver import Outcome
from rotator.rules import machine


def verify(ctx: RotationContext) -> Outcome:
    """What `ctx`'s credential shows: one current key everywhere that Bluum accepts (exit 0), or what is wrong."""
    name = ctx.cred.name
    current = preflight.read_current(ctx)
    observed = ctx.current_everywhere()
    mismatched = machine.readback_mismatches(current, observed)
    if mismatched:
        return Outcome(
            name,
            ExitCode.INCOMPLETE,
            f"{name}: {', '.join(mismatched)} hold a different current key "
            f"than {ctx.primary.name}; run `rotator resume {name}` or fix the store by hand",
        )
    result = ctx.check(current)
    if result.outcome.value == "works":
        return Outcome(
            name, ExitCode.OK, f"{name}: {current.label} works at Bluum and is current in {', '.join(observed)}"
        )
    if result.outcome.value == "inconclusive":
        return Outcome(
            name,
            ExitCode.UNAVAILABLE if machine.transient_status(result.status) else ExitCode.BAD_INPUT,
            f"{name}: could not check the current key {current.label}: {result.reason}. This says nothing about "
            "the key: do not rotate because of it; try again later (or fix `check_path`/`base_url` if it "
            "persists)",
        )
    detail = f"{result.reason}" + (f" ({result.code})" if result.code else "")
    return Outcome(
        name,
        ExitCode.INCOMPLETE,
        f"{name}: Bluum rejects the current key {current.label}: {detail}. Replace it: "
        f"`rotator rotate {name} --emergency --reason TEXT`",
    )
