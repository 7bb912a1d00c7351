"""Which key at Bluum a stored pair is, and whether a key may be revoked: decided by public keys, never id lines.

A `BLUUM_KEY_ID` line is a note a person can edit, copy into the wrong file or leave stale; the API key (Bluum's
`public_key`, the Basic-auth user name) is what actually authenticates, so it alone says which key an application
uses. Every decision here therefore matches stored pairs to Bluum's key list by public key, treats an id line
only as a cross-check that must agree, and refuses to revoke any key whose public key some configured store still
holds, in any stage, for any credential (I1).

Pure functions only: the engine and sweep gather the key list and the stores' contents, these decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from rotator.core.model import ApiKeyInfo, Stage, StoredKey, printable_id

# Generous for any key format we know of, and far below what HTTP servers take in one header
# (a 70 KB secret draws 431 Request Header Fields Too Large, which a check cannot tell from a bad key).
MAX_API_KEY_LENGTH: Final = 256
MAX_API_SECRET_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True)
class Holding:
    """One stage of one store holding a key: what an application may be using. No secret, only the public key."""

    credential: str
    store: str
    stage: Stage
    public_key: str

    @property
    def where(self) -> str:
        return f"store {self.store!r} ({self.stage.value.upper()} of credential {self.credential!r})"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A store that could not be read when holdings were gathered: whether it holds a key is unknown."""

    store: str
    credential: str
    error: str
    """The store's own error message (paths and labels, never a value)."""
    misconfigured: bool = False
    """It could not even be opened (its configuration, or a variable it names, is wrong): bad input, which refuses a
    normal rotation at its start; an emergency goes on (rotation.preflight)."""

    @property
    def where(self) -> str:
        error = self.error.removeprefix(f"store {self.store!r}: ")
        return f"store {self.store!r} of credential {self.credential!r} ({error})"


@dataclass(frozen=True, slots=True)
class Survey:
    """What every configured store holds, and the stores that could not be read (Runtime.survey)."""

    held: list[Holding]
    unreadable: list[Unreadable]


def unread_stores(survey: Survey) -> str | None:
    """The unreadable stores of `survey` in words, or None when every store was read."""
    return "; ".join(item.where for item in survey.unreadable) or None


def listed_key(keys: Iterable[ApiKeyInfo], stored: StoredKey) -> ApiKeyInfo | None:
    """The key Bluum lists with `stored`'s public key, or None when Bluum's list has no such key."""
    for info in keys:
        if info.public_key == stored.api_key:
            return info
    return None


def id_line_problem(stored: StoredKey, listed: ApiKeyInfo | None, *, where: str, scope: str) -> str | None:
    """Why the key id a store writes beside its pair contradicts Bluum's list, or None when it agrees (or is absent).

    A wrong id line is how a rotation of one credential once revoked another's key: refuse, and say which id is
    right so the person can fix the line (or delete it: the id is then looked up by public key).
    """
    if stored.key_id is None:
        return None
    said = printable_id(stored.key_id) or "something that is not a key id (not shown: it may be a pasted secret)"
    if listed is None:
        return (
            f"{where} says its key is {said}, but Bluum lists no key of {scope} with the API "
            f"key stored there: the pair may belong to another investor or to the other environment, or the id "
            f"line is stale. Put this credential's own key there, or, if that pair is right but not one Bluum's "
            f"API manages, delete the key id line (its old key is then revoked by a person, in the dashboard)"
        )
    if listed.id != stored.key_id:
        return (
            f"{where} says its key is {said}, but the API key stored there is {listed.id} at Bluum. "
            f"Fix the key id line to {listed.id} (or delete it: the id is then looked up by public key)"
        )
    return None


def value_problems(stored: StoredKey, *, where: str) -> list[str]:
    """What makes a stored pair unusable in HTTP Basic auth: found before anything is created, never by a 4xx later.

    Messages name lengths and positions only, never a character of the value.
    """
    problems = []
    for field, value, limit in (
        ("API key", stored.api_key, MAX_API_KEY_LENGTH),
        ("API secret", stored.api_secret.reveal(), MAX_API_SECRET_LENGTH),
    ):
        if not value:
            problems.append(f"{where}: the {field} is empty")
            continue
        if len(value) > limit:
            problems.append(
                f"{where}: the {field} is {len(value)} characters long (at most {limit}): it is not a Bluum key; "
                "re-copy the pair"
            )
            continue
        bad = next((i for i, ch in enumerate(value) if not "\x21" <= ch <= "\x7e"), None)
        if bad is not None:
            problems.append(
                f"{where}: the {field} has a space, control or non-ASCII character at position {bad + 1}; "
                "re-copy the pair (a paste often brings one along)"
            )
            continue
        if field == "API key" and ":" in value:
            problems.append(f"{where}: the API key contains ':', which HTTP Basic auth cannot carry; re-copy the pair")
    return problems


def revoke_refusal(info: ApiKeyInfo, holdings: Iterable[Holding], *, allowed: Callable[[Holding], bool]) -> str | None:
    """Why `info` must not be revoked, or None. It must not be held anywhere but where `allowed` says (I1)."""
    held = [h for h in holdings if h.public_key == info.public_key and not allowed(h)]
    if not held:
        return None
    return f"{info.id} is still held by " + ", ".join(h.where for h in held) + ": an application may be using it"


def shared_with_others(stored: StoredKey, holdings: Iterable[Holding], credential: str) -> str | None:
    """Where else than in `credential`'s own stores `stored` is held, or None. A key two credentials share can
    never be rotated: its revoke would always be refused for the other's sake."""
    others = [h.where for h in holdings if h.public_key == stored.api_key and h.credential != credential]
    return ", ".join(others) if others else None


def old_key_of(credential: str) -> Callable[[Holding], bool]:
    """The one place the old key of a rotation may still be held when it is revoked: the credential's PREVIOUS."""
    return lambda holding: holding.credential == credential and holding.stage is Stage.PREVIOUS


def held_nowhere(holding: Holding) -> bool:
    """For keys no store may hold when revoked: a rolled-back new key, a duplicate, an orphan."""
    return False
