"""Which targets `rotator deploy` copies the current key into, decided from what each target shows (no I/O).

A store added to `also_deploy_to` after the credential was enrolled holds nothing yet: it gets the primary's current
key. One that shows the same pair already is left alone. One that shows any other key is never overwritten: that key
may be what an application reads now, and no rotation recorded it, so nothing would ever revoke it (I8: a store's
content never decides what is revoked, and the deploy must not hide a key either). A person decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotator.core.model import StoredKey, fingerprint


@dataclass(frozen=True, slots=True)
class Spread:
    """The decision, by store name: copy into `empty`, leave `holding`, refuse for `conflicting` (with a line each)."""

    empty: tuple[str, ...] = ()
    holding: tuple[str, ...] = ()
    conflicting: tuple[str, ...] = ()


def spread(current: StoredKey, shown: dict[str, StoredKey | None], where: dict[str, str]) -> Spread:
    """`shown`: each target's CURRENT (None: the store or its key does not exist yet), in the configuration's order;
    `where`: each store's description for the conflict lines (a path, never a secret)."""
    empty, holding, conflicting = [], [], []
    for name, found in shown.items():
        if found is None:
            empty.append(name)
        elif found.same_key(current):
            holding.append(name)
        else:
            what = (
                "the same API key with another secret"
                if found.api_key == current.api_key
                else f"another key, {found.label if found.key_id else fingerprint(found.api_key)}"
            )
            conflicting.append(f"store {name!r} ({where.get(name, name)}) holds {what}")
    return Spread(tuple(empty), tuple(holding), tuple(conflicting))
