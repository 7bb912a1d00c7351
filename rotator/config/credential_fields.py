"""The fields of one `[credentials.NAME]` table that stand on their own: environment, issuer, investor id, timing.

Each parser records every problem it finds (with the fix) and returns None for a field that is wrong, so one
run of `rotator` reports all of a file's mistakes at once; references to other tables are checked afterwards
(rotator/config/credential_links.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from rotator.config.credential_model import (
    DEFAULT_CONSUMER_WAIT,
    DEFAULT_GRACE,
    DEFAULT_ROTATE_EVERY,
    DEFAULT_VERIFY_TIMEOUT,
    INVESTOR_ID_EXAMPLE,
    INVESTOR_ID_PATTERN,
    ISSUERS,
    MAX_CONSUMER_WAIT,
    MAX_ROTATE_EVERY,
    MAX_VERIFY_TIMEOUT,
    CredentialDraft,
    Issuer,
)
from rotator.config.tables import Table, did_you_mean
from rotator.core.durations import format_duration
from rotator.core.model import Environment

_ISSUER_BY_NAME: Final[dict[str, Issuer]] = {issuer: issuer for issuer in ISSUERS}
_ENVIRONMENT_NAMES: Final = frozenset(env.value for env in Environment)
_ENVIRONMENT_ALIASES: Final = {
    "prod": "production",
    "live": "production",
    "test": "sandbox",
    "sand": "sandbox",
}


def parse_environment(table: Table) -> Environment | None:
    """`environment`, with a did-you-mean for the usual aliases (prod, live, test) and a wrong case."""
    environment = table.text(
        "environment",
        example='"sandbox" or "production"',
        required=True,
        why=" (which Bluum environment this key belongs to)",
    )
    if environment is None:
        return None
    try:
        return Environment(environment)
    except ValueError:
        pass
    folded = environment.strip().lower()
    guess = _ENVIRONMENT_ALIASES.get(folded) or (folded if folded in _ENVIRONMENT_NAMES else None)
    hint = f' (did you mean "{guess}"?)' if guess else ""
    table.problem(
        "environment",
        f"is neither sandbox nor production{hint}",
        f'write environment = "{guess or "sandbox"}"' + ("" if guess else ' or environment = "production"'),
    )
    return None


def parse_issuer(table: Table) -> Issuer | None:
    """`issuer`: bluum or manual."""
    issuer = table.text(
        "issuer",
        example='"bluum" or "manual"',
        required=True,
        why=' ("bluum" mints keys through the API, "manual" means a person does)',
    )
    if issuer is None:
        return None
    found = _ISSUER_BY_NAME.get(issuer)
    if found is None:
        table.problem(
            "issuer",
            f"is neither bluum nor manual{did_you_mean(issuer, ISSUERS)}",
            'write issuer = "bluum" (investor-scoped keys, made through the API) or issuer = "manual" '
            "(keys made by a person in Bluum's dashboard, such as tenant keys)",
        )
    return found


def parse_investor_id(table: Table) -> str | None:
    """`investor_id`, in Bluum's own shape (inv_ and 26 lowercase letters and digits)."""
    investor_id = table.text("investor_id", example=f'"{INVESTOR_ID_EXAMPLE}"')
    if investor_id is None:
        return None
    if INVESTOR_ID_PATTERN.fullmatch(investor_id):
        return investor_id
    lower = " (Bluum's ids are lowercase)" if INVESTOR_ID_PATTERN.fullmatch(investor_id.lower()) else ""
    table.problem(
        "investor_id",
        f"is not a Bluum investor id: expected inv_ followed by 26 lowercase letters and digits{lower}",
        f'copy the id from Bluum (GET /v1/investors), e.g. investor_id = "{INVESTOR_ID_EXAMPLE}"',
    )
    return None


def check_issuer_fields(table: Table, issuer: Issuer | None) -> None:
    """Issuer "bluum" needs investor_id and manager; issuer "manual" would ignore them, so they are refused."""
    if issuer == "bluum":
        if not table.has("investor_id"):
            table.problem(
                "investor_id",
                'missing: issuer "bluum" needs the investor whose investor-scoped key this is',
                f'add investor_id = "{INVESTOR_ID_EXAMPLE}" (your investor\'s id), or set issuer = "manual" '
                "if a person makes this key in Bluum's dashboard",
            )
        if not table.has("manager"):
            table.problem(
                "manager",
                'missing: issuer "bluum" needs the credential (a tenant key) whose key creates and revokes this one',
                'add manager = "NAME" naming that [credentials.NAME] table, or set issuer = "manual"',
            )
    elif issuer == "manual":
        for key in ("investor_id", "manager"):
            if table.has(key):
                table.problem(
                    key,
                    'is only used with issuer "bluum"; with issuer "manual" it would be ignored',
                    f'remove {key}, or set issuer = "bluum" if Bluum\'s API should make this key',
                )


def parse_timing(table: Table, draft: CredentialDraft) -> None:
    rotate_every = table.duration("rotate_every", DEFAULT_ROTATE_EVERY)
    if rotate_every is not None:
        if rotate_every <= timedelta(0):
            table.problem("rotate_every", "must be longer than 0s", 'write rotate_every = "90d" (or less)')
            rotate_every = None
        elif rotate_every > MAX_ROTATE_EVERY:
            table.problem(
                "rotate_every",
                f"{format_duration(rotate_every)} is longer than 90 days; Bluum requires rotation at least every "
                "90 days",
                'write rotate_every = "90d" or less',
            )
            rotate_every = None
    grace = table.duration("grace", DEFAULT_GRACE)
    if grace is not None and rotate_every is not None and grace >= rotate_every:
        table.problem(
            "grace",
            f"{format_duration(grace)} is not shorter than rotate_every ({format_duration(rotate_every)}): the next "
            "rotation would start while the old key is still active, which makes three keys",
            'make grace (the overlap before the old key is revoked) much shorter, e.g. grace = "1h"',
        )
        grace = None
    verify_timeout = table.duration("verify_timeout", DEFAULT_VERIFY_TIMEOUT)
    if verify_timeout is not None and verify_timeout <= timedelta(0):
        table.problem(
            "verify_timeout",
            "must be longer than 0s: a new key needs time to be accepted by Bluum",
            'write verify_timeout = "60s"',
        )
        verify_timeout = None
    elif verify_timeout is not None and verify_timeout > MAX_VERIFY_TIMEOUT:
        table.problem(
            "verify_timeout",
            f"{format_duration(verify_timeout)} is longer than {format_duration(MAX_VERIFY_TIMEOUT)}: a rotation "
            "waits up to this long several times while holding the credential's lock, and a lease-based lock "
            "could run out under it",
            'write at most verify_timeout = "10m"; a key that takes longer to propagate needs a person',
        )
        verify_timeout = None
    draft.rotate_every, draft.grace, draft.verify_timeout = rotate_every, grace, verify_timeout
    draft.consumer_wait = _parse_consumer_wait(table)


def _parse_consumer_wait(table: Table) -> timedelta | None:
    wait = table.duration("consumer_wait", DEFAULT_CONSUMER_WAIT)
    if wait is not None and not timedelta(0) < wait <= MAX_CONSUMER_WAIT:
        table.problem(
            "consumer_wait",
            f"must be longer than 0s and at most {format_duration(MAX_CONSUMER_WAIT)}: one run polls the consumers "
            "this long while holding the credential's lock; the next tick or `rotator resume` polls again",
            'write consumer_wait = "2m"',
        )
        return None
    return wait
