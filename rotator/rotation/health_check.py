"""Asking one batch's health checks (`health` in rotator/config/reloads.py) until all pass or `health_timeout` ends.

At the edge, like reload_runner.py, and for the same reasons: a check is someone else's endpoint or program. A URL
is one GET with no redirect followed, no proxy from the environment, each try bounded (5 s, or what is left); its body
is never read, only its status. A command runs through the reload runner (its own session killed past the time left,
a minimal environment, its output kept only when it cannot hold a secret).

A consumer check asks one of the credential's consumers (rotator/consumers/, issue 19's attestation) which key it
uses, bounded by that consumer's own timeout; it passes when the consumer reports the new key's fingerprint.

Why poll rather than ask once: an application restarted a moment ago is rarely ready at once; a check that fails is
asked again after a back-off (rotator/rules/rollout.py) until the timeout, the lease renewed between tries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from rotator.config.consumers import Consumer
from rotator.config.reloads import HEALTH_TRY_TIMEOUT, HealthCheck
from rotator.consumers.poll import poll_once
from rotator.core.durations import format_duration
from rotator.rotation.reload_runner import action_env, run_action, screened
from rotator.rules.consumers import describe
from rotator.rules.rollout import health_delay

if TYPE_CHECKING:
    from rotator.config.reloads import ReloadAction
    from rotator.rotation.context import Journal, RotationContext


@dataclass(frozen=True, slots=True)
class Gate:
    """One check to pass: the action it belongs to (its environment and name) and where it runs."""

    store: str
    action: ReloadAction
    check: HealthCheck
    facts: Mapping[str, str]
    consumer: Consumer | None = None
    """For a consumer check: the consumer, as configured (rotator/config/consumers.py)."""
    fingerprints: tuple[str, str | None] = ("", None)
    """For a consumer check: the new key's fingerprint and the old key's (None when not known)."""


def ask(gate: Gate, secrets: Collection[str], left: float) -> tuple[bool, str]:
    """Ask the check once, within `left` seconds; whether it passed and what was seen, in words safe to show."""
    if gate.check.kind == "consumer" and gate.consumer is None:  # refused when rotator.toml is loaded
        return False, f"{gate.check.consumer} is not a consumer of {gate.facts['ROTATOR_CREDENTIAL']}"
    if gate.consumer is not None:
        new, old = gate.fingerprints
        credential = gate.facts["ROTATOR_CREDENTIAL"]
        (found,) = poll_once([gate.consumer], new_fingerprint=new, old_fingerprint=old, credential=credential)
        return found.outcome == "new", describe(found)
    if gate.check.kind == "command":
        probe = gate.check.probe(timedelta(seconds=max(left, 0.1)), gate.action.pass_env)
        result = run_action(probe, action_env(probe, gate.facts), secrets)
        return result.ok, result.describe()
    return _get(gate.check, min(HEALTH_TRY_TIMEOUT.total_seconds(), max(left, 0.1)), secrets)


def _get(check: HealthCheck, timeout: float, secrets: Collection[str]) -> tuple[bool, str]:
    import httpx

    try:
        with (
            httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client,
            client.stream("GET", check.url, headers={"User-Agent": "bluum-rotator health"}) as response,
        ):
            status = response.status_code
    except httpx.TimeoutException:
        return False, f"no answer within {format_duration(timeout, places=2)}"
    except httpx.HTTPError as exc:
        said = screened(str(exc), secrets)
        return False, f"no answer ({type(exc).__name__}{': ' + said if said else ''})"
    if status == check.status:
        return True, f"HTTP {status}"
    return False, f"HTTP {status} (expected {check.status})"


def wait_healthy(
    ctx: RotationContext, journal: Journal, gates: Sequence[Gate], secrets: Collection[str]
) -> tuple[Gate, str, int] | None:
    """Ask every gate, again with back-off, until all passed (None) or the credential's `health_timeout` is spent:
    then the first gate still failing, what it last showed, and how often it was asked."""
    runtime = ctx.runtime
    timeout = ctx.cred.rollout.health_timeout.total_seconds()
    started = runtime.monotonic()
    pending = list(gates)
    seen: dict[int, tuple[str, int]] = {}
    attempt = 0
    while True:
        for gate in list(pending):
            journal.keepalive()
            ok, saw = ask(gate, secrets, timeout - (runtime.monotonic() - started))
            tries = seen.get(id(gate), ("", 0))[1] + 1
            seen[id(gate)] = (saw, tries)
            if ok:
                pending.remove(gate)
        if not pending:
            return None
        delay = health_delay(attempt)
        if runtime.monotonic() - started + delay > timeout:
            gate = pending[0]
            saw, tries = seen[id(gate)]
            return gate, saw, tries
        after = format_duration(delay)
        journal.progress(f"{ctx.cred.name}: waiting for {len(pending)} health check(s); next try in {after}")
        runtime.sleep(delay)
        attempt += 1
