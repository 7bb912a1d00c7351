"""What `rotator plan` checks of a Vault store without writing: the mount, and the token's capabilities on both paths.

Two read-only questions (Vault's audit log records both, neither changes anything): `sys/internal/ui/mounts/<mount>`
(in Vault's and OpenBao's default policy) says whether a KV version 2 engine is mounted there, and
`sys/capabilities-self` (default policy too) lists what the token may do on the path applications read and on the
stage document. A rotation needs create, read and update on both (README 'Keys in Vault or OpenBao (KV v2)').
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from hvac import exceptions as vault

from backends.vault.errors import translated
from rotator.core.findings import Finding, Severity

if TYPE_CHECKING:
    from backends.vault.auth import VaultSession

__all__ = ["NEEDED", "vault_access", "vault_refusals"]

NEEDED: Final = ("create", "read", "update")
"""What a rotation does on each of the two data paths (a first key creates; every later write is an update)."""


def vault_access(part: str, session: VaultSession, mount: str, paths: tuple[str, ...], store: str) -> list[Finding]:
    """Findings for one Vault store: the mount at `mount`, and the token's capabilities on `paths` (the path
    applications read, the stage document's), both relative to the mount."""
    with translated("checking the token's access at", mount, store=store, address=session.address):
        client = session.client()
    api_paths = [f"{mount}/data/{path}" for path in paths]
    try:
        with translated("checking the token's access at", mount, store=store, address=session.address):
            answer = _capabilities(client, api_paths)
    except _Refused:
        if not _looks_itself_up(client):
            return [_token_refused(part)]
        return [
            Finding(
                part,
                "the token may not ask Vault what it may do (sys/capabilities-self), so its access to "
                + " and ".join(api_paths)
                + " was not proven",
                "give the token the `default` policy, or check its policy by hand",
                Severity.UNCHECKED,
            )
        ]
    with translated("checking the mount", mount, store=store, address=session.address):
        mount_problem = _mount_problem(client, mount)
    if mount_problem is not None:
        return [Finding(part, *mount_problem)]
    granted = answer.get("data") if isinstance(answer, dict) else None
    return [found for path in api_paths if (found := _missing(part, path, _caps(granted, answer, path))) is not None]


def vault_refusals(part: str, session: VaultSession, mount: str, paths: tuple[str, ...]) -> list[Finding]:
    """The capabilities the token lacks on `paths`, from one `sys/capabilities-self` (what `rotate` asks before it
    changes anything); [] when Vault could not answer that question (the rotation then meets the real error)."""
    api_paths = [f"{mount}/data/{path}" for path in paths]
    try:
        answer = _capabilities(session.client(), api_paths)
    except Exception:  # any failure to answer decides nothing: the rotation's own calls meet it, worded as before
        return []
    granted = answer.get("data") if isinstance(answer, dict) else None
    return [found for path in api_paths if (found := _missing(part, path, _caps(granted, answer, path))) is not None]


def _looks_itself_up(client: object) -> bool:
    """Whether the token may read itself (default policy): when it may not and may not ask its capabilities either,
    Vault refuses the token itself."""
    try:
        client.auth.token.lookup_self()  # type: ignore[attr-defined]
    except (vault.Forbidden, vault.Unauthorized):
        return False
    return True


class _Refused(Exception):
    """Vault refused the question itself (kept apart from the errors `translated` words for every other call)."""


def _capabilities(client: object, paths: list[str]) -> object:
    try:
        return client.adapter.post("/v1/sys/capabilities-self", json={"paths": paths})  # type: ignore[attr-defined]
    except (vault.Forbidden, vault.Unauthorized) as exc:
        raise _Refused from exc


def _caps(granted: object, answer: object, path: str) -> set[str]:
    for source in (granted, answer):
        if isinstance(source, dict) and isinstance(source.get(path), list):
            return {str(item) for item in source[path]}
    return set()


def _missing(part: str, path: str, caps: set[str]) -> Finding | None:
    if "root" in caps:
        return None
    missing = [cap for cap in NEEDED if cap not in caps]
    if not missing:
        return None
    has = ", ".join(sorted(caps)) or "nothing"
    return Finding(
        part,
        f"the token's policy lacks {', '.join(missing)} on {path} (it has: {has}): a rotation would stop there",
        f'add to its policy: path "{path}" {{ capabilities = ["create", "read", "update"] }}',
    )


def _mount_problem(client: object, mount: str) -> tuple[str, str] | None:
    """Why `mount` is not a KV version 2 engine this token can reach, and the fix; None when it is."""
    try:
        answer = client.adapter.get(f"/v1/sys/internal/ui/mounts/{mount}")  # type: ignore[attr-defined]
    except (vault.Forbidden, vault.InvalidPath, vault.InvalidRequest):
        return (
            f"no secrets engine is mounted at {mount}/ (or the token may not see it)",
            f"`bao secrets enable -path={mount} -version=2 kv`, or fix `mount` in the store's table",
        )
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        return None
    kind, version = data.get("type"), (data.get("options") or {}).get("version")
    if kind not in ("kv", "generic") or str(version) != "2":
        return (
            f"{mount}/ is a {kind} engine (version {version}), not KV version 2",
            f"mount KV v2 there (`bao secrets enable -path={mount} -version=2 kv`) or name a KV v2 mount",
        )
    return None


def _token_refused(part: str) -> Finding:
    return Finding(
        part,
        "Vault refuses the token (expired or revoked: it may not even look itself up)",
        "log in again or give a new token (VAULT_TOKEN, token_file, or the store's auth method), then plan again",
    )
