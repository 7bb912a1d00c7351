"""The `[credentials.NAME]` tables: a key pair, who mints it, where it is deployed, and how often it rotates.

Each table is read into a draft on its own; then the references between credentials and to stores are checked, so
the engine can rely on them:
- every store, also_deploy_to and manager reference resolves; a store holds exactly one credential;
- I7 at the configuration level: a credential's manager is a credential of the same environment (its base URL is
  checked in rotator/config/endpoints.py);
- rotate_every is at most 90 days (Bluum's rule) and the overlap (grace) is shorter than it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Literal

from rotator.config.endpoints import DEFAULT_API_KEYS_PATH, parse_base_url, parse_paths
from rotator.config.rollout import ROLLOUT_KEYS, Rollout, parse_rollout
from rotator.config.tables import README_HINT, Problems, Table, did_you_mean, list_names, named_tables
from rotator.core.durations import format_duration
from rotator.core.model import Environment
from rotator.rules.windows import Schedule

__all__ = [
    "CREDENTIAL_KEYS",
    "DEFAULT_CONSUMER_WAIT",
    "DEFAULT_GRACE",
    "DEFAULT_ROTATE_EVERY",
    "DEFAULT_VERIFY_TIMEOUT",
    "INVESTOR_ID_EXAMPLE",
    "INVESTOR_ID_PATTERN",
    "ISSUERS",
    "MAX_CONSUMER_WAIT",
    "MAX_ROTATE_EVERY",
    "MAX_VERIFY_TIMEOUT",
    "MINIMAL_EXAMPLE",
    "SEEDED_KEY_AGES",
    "CredentialConfig",
    "Issuer",
    "parse_credentials",
]

Issuer = Literal["bluum", "manual"]
ISSUERS: Final[tuple[Issuer, ...]] = ("bluum", "manual")
_ISSUER_BY_NAME: Final[dict[str, Issuer]] = {issuer: issuer for issuer in ISSUERS}

INVESTOR_ID_PATTERN: Final = re.compile(r"inv_[0-9a-z]{26}")
"""Bluum's prefixed ids: `inv_` + 26 lowercase base32 characters (Crockford's alphabet is a subset)."""
INVESTOR_ID_EXAMPLE: Final = "inv_2ahq810t9rgmwgncgcawcm5400"

DEFAULT_ROTATE_EVERY: Final = timedelta(days=90)
MAX_VERIFY_TIMEOUT: Final = timedelta(minutes=10)
"""A rotation polls up to verify_timeout before deploying, after deploying and after revoking; each wait renews the
lease (rotation.driver.LEASE_TTL_SECONDS, 15 min, renewed every third of it): 10 minutes keeps one poll's gap small."""
MAX_ROTATE_EVERY: Final = timedelta(days=90)
"""Bluum asks for rotation at least quarterly; a longer schedule would be out of policy from day one."""
DEFAULT_GRACE: Final = timedelta(hours=1)
DEFAULT_VERIFY_TIMEOUT: Final = timedelta(seconds=60)
DEFAULT_CONSUMER_WAIT: Final = timedelta(minutes=2)
MAX_CONSUMER_WAIT: Final = timedelta(minutes=10)
"""How long ONE run polls consumers before it leaves the rest to the next tick or `resume`; it holds the lease
(15 minutes, renewed between polls), so like verify_timeout it stays well inside it."""

MINIMAL_EXAMPLE: Final = """\
    [stores.app]
    type = "env"
    path = "app.env"

    [credentials.app]
    environment = "sandbox"
    issuer = "manual"
    store = "app\""""

CREDENTIAL_KEYS: Final = (
    "environment",
    "base_url",
    "issuer",
    "investor_id",
    "manager",
    "store",
    "also_deploy_to",
    "rotate_every",
    "grace",
    "verify_timeout",
    "check_path",
    "api_keys_path",
    "seeded_key_age",
    *ROLLOUT_KEYS,
    "consumer_wait",
    "windows",
)
SEEDED_KEY_AGES: Final = ("count", "due")


@dataclass(frozen=True, slots=True)
class CredentialConfig:
    """One `[credentials.NAME]` table: a key pair, who mints it, and where it is deployed."""

    name: str
    environment: Environment
    base_url: str
    """No trailing slash; ends in /v1 for Bluum's own hosts."""
    issuer: Issuer
    investor_id: str | None
    """Set exactly when issuer is "bluum": whose investor-scoped key this is."""
    manager: str | None
    """Set exactly when issuer is "bluum": the credential (of the same environment) that creates/revokes."""
    store: str
    """The primary store: it also holds the rotation record and the lock."""
    also_deploy_to: tuple[str, ...]
    rotate_every: timedelta
    grace: timedelta
    verify_timeout: timedelta
    check_path: str
    """Read-only path, relative to base_url, that a working key answers with 200."""
    api_keys_path: str = DEFAULT_API_KEYS_PATH
    """Relative to base_url; `{investor_id}` is filled in. Used by issuer "bluum" only."""
    seeded_key_age: str = "count"
    """A key seeded by hand (never rotated here): "count" its age from Bluum's creation time, or from when the
    rotator first saw it; "due" rotates it at the first scheduled run."""
    rollout: Rollout = field(default_factory=Rollout)
    """How its reload actions run: in batches, each gated by health checks (rotator/config/rollout.py)."""
    consumer_wait: timedelta = DEFAULT_CONSUMER_WAIT
    """How long one run polls the consumers (rotator/config/consumers.py) for the new key before it returns."""
    windows: Schedule = field(default_factory=Schedule)
    """When a scheduled rotation may start, the expiry lead time and the cap per paying key (rotator/config/windows.py;
    the default, with nothing configured, gates nothing)."""

    @property
    def targets(self) -> tuple[str, ...]:
        """Every store the key is deployed to, primary first."""
        return (self.store, *self.also_deploy_to)


@dataclass(slots=True)
class _Draft:
    """A credential's fields as far as they parsed; turned into a CredentialConfig only when all is well."""

    name: str
    environment: Environment | None = None
    base_url: str | None = None
    issuer: Issuer | None = None
    investor_id: str | None = None
    manager: str | None = None
    store: str | None = None
    also_deploy_to: tuple[str, ...] | None = ()
    rotate_every: timedelta | None = None
    grace: timedelta | None = None
    verify_timeout: timedelta | None = None
    check_path: str | None = None
    api_keys_path: str | None = None
    seeded_key_age: str = "count"
    rollout: Rollout | None = field(default_factory=Rollout)
    consumer_wait: timedelta | None = DEFAULT_CONSUMER_WAIT

    def finish(self) -> CredentialConfig:
        if (
            self.environment is None
            or self.base_url is None
            or self.issuer is None
            or self.store is None
            or self.also_deploy_to is None
            or self.rotate_every is None
            or self.grace is None
            or self.verify_timeout is None
            or self.check_path is None
            or self.api_keys_path is None
            or self.rollout is None
            or self.consumer_wait is None
        ):
            raise AssertionError(f"credential {self.name!r} built with a field missing but no problem recorded")
        return CredentialConfig(
            name=self.name,
            environment=self.environment,
            base_url=self.base_url,
            issuer=self.issuer,
            investor_id=self.investor_id,
            manager=self.manager,
            store=self.store,
            also_deploy_to=self.also_deploy_to,
            rotate_every=self.rotate_every,
            grace=self.grace,
            verify_timeout=self.verify_timeout,
            check_path=self.check_path,
            api_keys_path=self.api_keys_path,
            seeded_key_age=self.seeded_key_age,
            rollout=self.rollout,
            consumer_wait=self.consumer_wait,
        )


_ENVIRONMENT_NAMES: Final = frozenset(env.value for env in Environment)
_ENVIRONMENT_ALIASES: Final = {
    "prod": "production",
    "live": "production",
    "test": "sandbox",
    "sand": "sandbox",
}


def parse_credentials(data: Mapping[str, Any], problems: Problems) -> dict[str, CredentialConfig]:
    """Each credential on its own, then the references between them and to stores.

    References are checked against every name the file defines, even a table that has problems of its own, so
    one mistake is reported once rather than again at each place that mentions it.
    """
    raw_credentials = data.get("credentials")
    if raw_credentials is None or raw_credentials == {}:
        problems.add(
            "credentials",
            "no credentials are defined, so there is nothing to rotate",
            f"add at least one [credentials.NAME] table and the store it lives in, e.g.\n{MINIMAL_EXAMPLE}\n"
            f"({README_HINT})",
        )
        return {}
    tables = named_tables(raw_credentials, "credentials", problems)
    raw_stores = data.get("stores")
    store_names = list(raw_stores) if isinstance(raw_stores, dict) else []
    drafts = {name: _parse_credential(name, raw, store_names, problems) for name, raw in tables.items()}
    all_credential_names = list(raw_credentials) if isinstance(raw_credentials, dict) else []
    for draft in drafts.values():
        _check_manager(draft, drafts, all_credential_names, problems)
    _check_store_sharing(drafts, problems)
    if problems.items:
        return {}
    return {name: draft.finish() for name, draft in drafts.items()}


def _parse_credential(name: str, raw: Mapping[str, Any], store_names: list[str], problems: Problems) -> _Draft:
    """One [credentials.NAME] table into a draft; every problem is recorded, none raised."""
    table = Table(raw, f"credentials.{name}", problems)
    table.check_keys(CREDENTIAL_KEYS)
    draft = _Draft(name=name)
    draft.environment = _parse_environment(table)
    draft.issuer = _parse_issuer(table)
    draft.investor_id = _parse_investor_id(table)
    draft.manager = table.text("manager", example='"tenant"')
    _check_issuer_fields(table, draft.issuer)
    draft.base_url = parse_base_url(table, draft.environment)
    _parse_targets(table, draft, store_names)
    _parse_timing(table, draft)
    draft.check_path, draft.api_keys_path = parse_paths(table, draft.base_url)
    draft.rollout = parse_rollout(table)
    seeded = table.text("seeded_key_age", example='"count"')
    if seeded is not None and seeded not in SEEDED_KEY_AGES:
        table.problem(
            "seeded_key_age",
            f"must be one of {', '.join(SEEDED_KEY_AGES)}{did_you_mean(seeded, SEEDED_KEY_AGES)}",
            'write seeded_key_age = "count" (age from Bluum, or from first seen) or "due" (rotate at the next run)',
        )
    elif seeded is not None:
        draft.seeded_key_age = seeded
    return draft


def _parse_environment(table: Table) -> Environment | None:
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


def _parse_issuer(table: Table) -> Issuer | None:
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


def _parse_investor_id(table: Table) -> str | None:
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


def _check_issuer_fields(table: Table, issuer: Issuer | None) -> None:
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


def _parse_targets(table: Table, draft: _Draft, store_names: list[str]) -> None:
    defined = f"defined stores: {list_names(store_names)}" if store_names else "no [stores.NAME] table is defined yet"
    store = table.text(
        "store", example='"NAME"', required=True, why=" (the primary store: it holds this key and the rotation record)"
    )
    if store is not None:
        if store in store_names:
            draft.store = store
        else:
            table.problem(
                "store",
                f"names no [stores.NAME] table{did_you_mean(store, store_names)}",
                f"name one of the [stores.NAME] tables ({defined}), or add the missing one",
            )
    also = table.string_list("also_deploy_to", example='["NAME", ...]')
    if also is None:
        draft.also_deploy_to = None
        return
    unknown = [name for name in also if name not in store_names]
    for index, name in enumerate(also):
        if name in store_names:
            continue
        table.problem(
            f"also_deploy_to[{index}]",
            f"names no [stores.NAME] table{did_you_mean(name, store_names)}",
            f"name [stores.NAME] tables only ({defined}), or add the missing one",
        )
    targets = [store, *also] if store is not None else list(also)
    # Only defined names are named: an unknown one was reported above, and its text is never echoed.
    repeated = sorted({name for name in targets if targets.count(name) > 1 and name in store_names})
    for name in repeated:
        what = "is the primary store and is listed again" if name == store else "is listed twice"
        table.problem(
            "also_deploy_to",
            f"store {name!r} {what}; a store holds one copy of one credential",
            f"list each store once, and not the primary store ({store!r})"
            if store in store_names
            else "list each store once",
        )
    if unknown or repeated:
        draft.also_deploy_to = None
    else:
        draft.also_deploy_to = also


def _parse_timing(table: Table, draft: _Draft) -> None:
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


def _check_manager(draft: _Draft, drafts: Mapping[str, _Draft], all_names: list[str], problems: Problems) -> None:
    manager = draft.manager
    if manager is None or draft.issuer != "bluum":
        return
    where = f"credentials.{draft.name}.manager"
    if manager == draft.name:
        problems.add(
            where,
            "a credential cannot manage itself: the manager's key creates and revokes this one",
            'name the tenant credential (usually issuer = "manual") whose key creates investor keys',
        )
        return
    if manager not in all_names:
        others = [name for name in all_names if name != draft.name]
        problems.add(
            where,
            f"names no [credentials.NAME] table{did_you_mean(manager, others)}",
            f"name one of the [credentials.NAME] tables (defined: {list_names(others)}), or add the missing one",
        )
        return
    boss = drafts.get(manager)
    if boss is None or boss.environment is None or draft.environment is None:
        return  # that credential has its own problems, already reported
    if boss.environment is not draft.environment:
        problems.add(
            where,
            f"{manager!r} is a {boss.environment.value} credential but {draft.name!r} is {draft.environment.value}; "
            "a key can only create and revoke keys of its own environment (I7)",
            f"point manager at a {draft.environment.value} tenant credential",
        )


def _check_store_sharing(drafts: Mapping[str, _Draft], problems: Problems) -> None:
    """A store holds one credential: the same store in two credentials' targets would overwrite one with the other."""
    users: dict[str, list[str]] = {}
    for draft in drafts.values():
        targets = [draft.store] if draft.store is not None else []
        targets += list(draft.also_deploy_to or ())
        for store in dict.fromkeys(targets):
            users.setdefault(store, []).append(draft.name)
    for store, names in users.items():
        if len(names) > 1:
            listed = " and ".join(f"credentials.{name}" for name in names)
            problems.add(
                f"stores.{store}",
                f"is used by {listed}; a store holds exactly one credential, so they would overwrite each other",
                "give each credential its own store (for example a second [stores.NAME] table with another path "
                "or prefix)",
            )
