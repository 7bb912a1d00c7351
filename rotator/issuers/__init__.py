"""Issuers: who mints and revokes a credential's keys (`bluum` through the API, `manual` by a person)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.errors import ConfigError

if TYPE_CHECKING:
    from rotator.config.loader import CredentialConfig
    from rotator.issuers.base import Issuer
    from rotator.rotation.runtime import Runtime


def build_issuer(cred: CredentialConfig, runtime: Runtime) -> Issuer:
    """The issuer `cred` names, given what it needs (an investor and a manager for `bluum`)."""
    if cred.issuer == "manual":
        from rotator.issuers.manual import ManualIssuer

        return ManualIssuer(cred)
    if cred.investor_id is None or cred.manager is None:
        raise ConfigError(f"credentials.{cred.name}: issuer 'bluum' needs `investor_id` and `manager`")
    from rotator.issuers.bluum import BluumIssuer

    return BluumIssuer(cred, runtime, investor_id=cred.investor_id, manager=cred.manager)
