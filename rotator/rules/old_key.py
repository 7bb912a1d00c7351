"""Which key a rotation replaces and revokes: the one identified when it started, never one a store shows later.

Why: the stores a rotation writes are also written by others. A person (or anyone the dotenv file's group lets
write) who puts another key's API key into a target during the propagation wait used to make that key the old one:
promote moved whatever the file showed into PREVIOUS, and the revoke took PREVIOUS's key. The API key is not a
secret (it is the Basic-auth user name Bluum lists as `public_key`), so knowing one was enough to have the rotator
revoke a bystander key and leave a leaked one active (I8). So the record keeps the old key's API key from the start,
and at promote and at revoke every store must show that key, or nothing, as the old one.

Pure decisions only; rotator/rotation/old_key_guard.py reads the stores and acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rotator.core.model import StoredKey, fingerprint
from rotator.rules.record import ENROLLMENT, RotationRecord


@dataclass(frozen=True, slots=True)
class OldKey:
    """The old key of a rotation as recorded at its start."""

    public_key: str | None
    """Its API key; None when there is none (an enrollment): then no store may show an old key at all."""
    label: str
    """How messages name it: its id at Bluum, else its fingerprint."""

    @property
    def named(self) -> str:
        """The label and, when the label is an id, the fingerprint too: an id line can be edited, the fingerprint
        is the API key's."""
        if self.public_key is None:
            return "no key (a first key has no old key)"
        mark = fingerprint(self.public_key)
        return self.label if self.label == mark else f"{self.label} ({mark})"


def recorded(record: RotationRecord) -> OldKey | None:
    """The old key `record` pins, or None for a record of an older version that did not keep it (its rotation then
    revokes what PREVIOUS holds, as before)."""
    if record.old_key_label == ENROLLMENT:
        return OldKey(None, ENROLLMENT)
    if record.old_public_key is None:
        return None
    return OldKey(record.old_public_key, record.old_key_label or fingerprint(record.old_public_key))


def shown_instead(old: OldKey, shown: Mapping[str, StoredKey | None], *, pair: StoredKey | None = None) -> list[str]:
    """The stores, of `shown` (store name: the key it shows as the old one, None for none), that show another key
    than `old`, each as "store 'NAME' shows key#…". `pair`: the old pair itself when this process read it at the
    start, so a store showing the old API key with another secret is caught too. Names labels only, never a value."""
    found = []
    for store, key in shown.items():
        if key is None:
            continue
        other_key = key.api_key != old.public_key
        other_secret = not other_key and pair is not None and not key.same_key(pair)
        if other_key:
            found.append(f"store {store!r} shows {fingerprint(key.api_key)}{_id_note(key)}")
        elif other_secret:
            found.append(f"store {store!r} shows the old key's API key with another secret")
    return found


def _id_note(key: StoredKey) -> str:
    """What the key's id line says, when it is id-shaped (the label a person would otherwise be shown)."""
    label = key.label
    return "" if label.startswith("key#") else f" (its id line says {label})"
