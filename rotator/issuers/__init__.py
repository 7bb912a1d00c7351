"""Issuers: who mints and revokes a credential's keys (`bluum` through the API, `manual` by a person).

An issuer is handed what it uses (a Bluum client for its base URL, a reader of its manager's key), never the runtime
that built it: the runtime sits in a later layer (rotation) and builds issuers, so the issuers cannot know it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError

if TYPE_CHECKING:
    from rotator.bluum.client import BluumClient
    from rotator.config.loader import CredentialConfig
    from rotator.issuers.base import Issuer
    from rotator.issuers.bluum import ManagerKey


def build_issuer(
    cred: CredentialConfig,
    *,
    client: Callable[[], BluumClient],
    manager_key: Callable[[str], ManagerKey],
) -> Issuer:
    """The issuer `cred` names, given what it needs: for `bluum`, `client` (the client for the credential's base URL,
    built on first call, so a command that makes no Bluum call never builds one) and `manager_key` (the reader of a
    manager credential's key, by the manager's name)."""
    if cred.issuer == "manual":
        from rotator.issuers.manual import ManualIssuer

        return ManualIssuer(cred)
    if cred.investor_id is None or cred.manager is None:
        raise ConfigError(f"credentials.{cred.name}: issuer 'bluum' needs `investor_id` and `manager`")
    from rotator.issuers.bluum import BluumIssuer

    return BluumIssuer(cred, client=client, manager=manager_key(cred.manager), investor_id=cred.investor_id)
