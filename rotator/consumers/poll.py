"""Polling a credential's consumers: every one at once, each bounded by its timeout; again with back-off until all
report the new key or the run's `consumer_wait` is spent.

Why at once, in threads: a poll lasts as long as its slowest consumer, not the sum of them, so twenty consumers with
a 5 s timeout are asked in 5 s. Why the run stops polling at `consumer_wait` rather than waiting out the grace
window: it holds the credential's lease; the next tick or `rotator resume` polls again, from any runner.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence

from rotator.attest import parse_answer
from rotator.config.consumers import Consumer
from rotator.consumers.ask import Answer, ask, http_client
from rotator.core.durations import format_duration
from rotator.rules.consumers import Attestation, classify, poll_delay, unmoved

__all__ = ["poll_once", "poll_until"]

_SPARE = 1.0
"""Past the longest timeout, how long a poll waits for a thread to hand its answer over."""


def poll_once(
    consumers: Sequence[Consumer], *, new_fingerprint: str, old_fingerprint: str | None, credential: str = ""
) -> list[Attestation]:
    """Every consumer's answer now, in the order given."""
    if not consumers:
        return []
    # One thread per consumer: with fewer, the last ones would be asked only after a hung one's timeout.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(consumers), thread_name_prefix="attest")
    client = http_client() if any(consumer.kind == "url" for consumer in consumers) else None
    try:
        futures = [pool.submit(ask, consumer, credential, client) for consumer in consumers]
        longest = max(consumer.timeout.total_seconds() for consumer in consumers)
        concurrent.futures.wait(futures, timeout=longest + _SPARE)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if client is not None:  # a request still hanging past the deadline fails now instead of later
            client.close()
    found = []
    for consumer, future in zip(consumers, futures, strict=True):
        answer = future.result() if future.done() and not future.cancelled() else None
        if answer is None:  # still asking: as good as no answer
            answer = Answer(None, f"timed out after {format_duration(consumer.timeout)}")
        found.append(_judge(consumer, answer, new_fingerprint, old_fingerprint))
    return found


def _judge(consumer: Consumer, answer: Answer, new_fingerprint: str, old_fingerprint: str | None) -> Attestation:
    if answer.body is None:
        return Attestation(consumer.name, consumer.store, "unreachable", None, answer.detail)
    reported = parse_answer(answer.body)
    outcome = classify(reported, new_fingerprint=new_fingerprint, old_fingerprint=old_fingerprint)
    detail = "not a fingerprint answer (see docs/consumer-attestation.md)" if outcome == "malformed" else ""
    return Attestation(consumer.name, consumer.store, outcome, reported, detail)


def poll_until(
    consumers: Sequence[Consumer],
    *,
    new_fingerprint: str,
    old_fingerprint: str | None,
    credential: str,
    wait: float,
    monotonic: Callable[[], float],
    sleep: Callable[[float], bool],
    between: Callable[[list[Attestation]], None] = lambda found: None,
) -> list[Attestation]:
    """Poll until every consumer reports the new key or `wait` seconds are spent; the last poll's answers.

    The back-off's delays (1 s, x2, up to 30 s) are cut short by the bound: when the next delay would pass it, the
    last poll is made AT the bound, not skipped. Why: with a 10 s wait the polls would otherwise fall at 0, 1, 3 and
    7 s, and a consumer that moves at 8 s would be reported unmoved although the run had waited for it; the gate and
    the rollback (rotator/rotation/reverse.py) both wait the whole bound they were given.

    `sleep(seconds)` returns True when the run was asked to stop (then the last answers stand); `between` runs after
    each poll that leaves someone unmoved (the driver renews its lease there and says who is still awaited)."""
    started = monotonic()
    attempt = 0
    while True:
        found = poll_once(
            consumers, new_fingerprint=new_fingerprint, old_fingerprint=old_fingerprint, credential=credential
        )
        if not unmoved(found):
            return found
        left = wait - (monotonic() - started)
        if left <= 0:
            return found
        delay = min(poll_delay(attempt), left)  # the last wait ends at the bound, where the last poll is made
        between(found)
        if sleep(delay):
            return found
        attempt += 1
