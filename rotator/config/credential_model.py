"""What one `[credentials.NAME]` table becomes: the validated CredentialConfig, the draft it is built from, and the
limits its fields are checked against.

Kept apart from the parsing (rotator/config/credentials.py and the credential_* modules beside it) so that every
module reading a credential's settings imports a small, stable module, and the parsers can grow without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Literal

from rotator.config.endpoints import DEFAULT_API_KEYS_PATH
from rotator.config.rollout import Rollout
from rotator.core.model import Environment
from rotator.rules.windows import Schedule

Issuer = Literal["bluum", "manual"]
ISSUERS: Final[tuple[Issuer, ...]] = ("bluum", "manual")

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
class CredentialDraft:
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
