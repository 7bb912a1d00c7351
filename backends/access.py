"""A store that can prove, without writing anything, that this runner may do what a rotation will do there.

Why a protocol of its own: `rotator plan` checks every store before a rotation needs it, and how to ask differs by
store (Vault: the token's capabilities on each path; AWS: the IAM actions on the secret and the ledger table; a dotenv
file: the folders' modes and this user's access). What can only be proven by writing is reported as not checked.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rotator.core.findings import Finding

__all__ = ["AccessChecked", "AccessRefusals", "LaneAccessChecked"]


@runtime_checkable
class AccessChecked(Protocol):
    """A store whose permissions can be checked with read-only calls."""

    def check_access(self) -> list[Finding]:
        """Every permission a rotation needs here that is missing (or could not be proven), each with its fix; []
        when all are there. Makes no mutating call. Raises StoreError when the store cannot be reached at all."""
        ...


@runtime_checkable
class AccessRefusals(Protocol):
    """A store that can tell, in ONE read-only request, a missing permission a rotation would only meet after it minted
    a key (then roll back): `rotate` asks it of every target but the primary before anything changes (preflight)."""

    def access_refusals(self) -> list[Finding]:
        """The missing permissions proven by that one answer (each a PROBLEM with its fix); [] when there are none, and
        also when the question itself could not be answered: the rotation then meets the real error as before."""
        ...


@runtime_checkable
class LaneAccessChecked(Protocol):
    """A store that keeps a paying key's lane (`[fleet] lanes`, backends.ledger.LaneSource) somewhere its permissions
    can be checked without writing (Vault: `<state_path>.lane`, a path a policy naming two paths exactly refuses)."""

    def check_lane_access(self) -> list[Finding]:
        """As `AccessChecked.check_access`, for the lane's place only."""
        ...
