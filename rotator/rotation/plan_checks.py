"""`rotator plan`, one credential: every check a rotation of it will need, each a finding with its fix, nothing written.

What is asked, in order: each target store's permissions (`backends.access`: Vault capabilities, IAM simulation, the
dotenv folders) and its current key (readable, usable, of the credential's environment: I7); the ledger (record and
pause: key age, what is due, an unfinished rotation); whether another credential holds the same key; whether Bluum
accepts the current key (a read-only GET with the key itself); each reload action's program (it exists, may be
run) or URL (resolves, something listens: no request is sent, a reload URL's request IS the reload) and each health
check's; each consumer's attestation (it answers, and names the current key). The paying key's list call is made once
per paying key, by rotator/rotation/plan.py, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.errors import ExitCode, RotatorError, StoreNotFound
from rotator.core.findings import Finding, Severity
from rotator.core.model import KeyPair, Stage, StoredKey

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backends.base import SecretStore
    from rotator.config.loader import CredentialConfig
    from rotator.config.stores import StoreConfig
    from rotator.rotation.runtime import Runtime
    from rotator.rules.identity import Holding, Unreadable

__all__ = ["check_credential", "from_error"]


def from_error(part: str, exc: RotatorError, fix: str) -> Finding:
    """A finding from an error the checked code raised: unreachable (exit 5) or a problem (exit 2)."""
    unreachable = exc.exit_code is ExitCode.UNAVAILABLE
    return Finding(part, str(exc), fix, Severity.UNREACHABLE if unreachable else Severity.PROBLEM)


def check_credential(
    runtime: Runtime,
    cred: CredentialConfig,
    *,
    holdings: list[Holding],
    ask_bluum: bool,
    unread: Sequence[Unreadable] = (),
) -> list[Finding]:
    """Every finding for `cred` (its name filled in). `ask_bluum`: False when its paying key's check found Bluum
    unreachable (each credential would wait out the same retries). `unread`: the stores the fleet's survey could not
    read; each of them stops this credential's rotation before its revoke."""
    found: list[Finding] = []
    current = _stores(runtime, cred, found)
    found += _unread(cred, unread)
    found += _ledger(runtime, cred, current)
    if current is not None:
        found += _shared(cred, current, holdings)
        if ask_bluum:
            found += _bluum(runtime, cred, current)
        found += _consumers(runtime, cred, current)
    from rotator.rotation.plan_reloads import reload_findings

    found += reload_findings(runtime, cred)
    return [_said_of(finding, cred.name) for finding in found]


def _unread(cred: CredentialConfig, unread: Sequence[Unreadable]) -> list[Finding]:
    """Another credential's store (or one no credential uses) that could not be read: whether it holds this
    credential's old key is unknown, so a rotation stops before its revoke there (exit 4, every key still working).
    The credential's own stores are said by their own check."""
    return [
        Finding(
            f"store {item.store}",
            f"{item.where} could not be "
            + (
                f"opened: a rotation of {cred.name} would be refused at its start (exit 2; an emergency goes on)"
                if item.misconfigured
                else f"read: a rotation of {cred.name} would stop before its revoke (exit 4), since that store might "
                "hold the old key"
            ),
            f"fix store {item.store} as its message says (or take it out of rotator.toml), then run "
            f"`rotator plan {cred.name}` again",
            Severity.PROBLEM,
        )
        for item in unread
        if item.store not in cred.targets
    ]


def _said_of(finding: Finding, credential: str) -> Finding:
    """`finding` of `credential`; an error's own "NAME: " prefix goes (the line starts with the name already)."""
    from dataclasses import replace

    problem = finding.problem.removeprefix(f"{credential}: ")
    return replace(finding, problem=problem, credential=credential)


def _stores(runtime: Runtime, cred: CredentialConfig, found: list[Finding]) -> StoredKey | None:
    """Each target's access and current key into `found`; the primary's current key (None: unreadable or empty)."""
    from backends.access import AccessChecked

    current: StoredKey | None = None
    for index, name in enumerate(cred.targets):
        part = f"store {name}"
        try:
            store = runtime.store(name)
            part = f"store {name} ({store.describe()})"
            if isinstance(store, AccessChecked):
                found += store.check_access()
            key = _current(cred, store, part, primary=index == 0)
        except RotatorError as exc:
            found.append(from_error(part, exc, _store_fix(runtime, cred, name, exc)))
            continue
        if key is not None and index == 0:
            current = key
    return current


def _current(cred: CredentialConfig, store: SecretStore, part: str, *, primary: bool) -> StoredKey | None:
    """The store's CURRENT, checked for environment (I7) and usable values; errors are the caller's findings."""
    from rotator.rules.guards import guard_environment, guard_values

    key = store.read(Stage.CURRENT)
    if key is None:
        if primary:
            raise StoreNotFound(f"{part} holds no current key", store=store.name)
        return None
    guard_environment(cred.name, cred.environment, key, f"the current key {key.label} in {store.name!r}")
    guard_values(cred.name, key, f"the current key in store {store.name!r}")
    return key


def _store_fix(runtime: Runtime, cred: CredentialConfig, store: str, exc: RotatorError) -> str:
    from rotator.core.errors import EnvironmentMismatch, StoreDenied

    if isinstance(exc, StoreDenied) or "AccessDenied" in str(exc):
        return _denied_fix(cred, runtime.config.store(store))

    if isinstance(exc, EnvironmentMismatch):
        return (
            f"put a {cred.environment.value} key in store {store}, or correct `environment` of "
            f"[credentials.{cred.name}] if the key is right"
        )
    if isinstance(exc, StoreNotFound):
        if store == cred.store:
            return f"`rotator enroll {cred.name}` gives it its first key (or write the key applications use there)"
        return f"`rotator deploy {cred.name}` copies the current key there"
    if exc.exit_code is ExitCode.UNAVAILABLE:
        return "check the store's address and the network, then run `rotator plan` again"
    return f"fix [stores.{store}] or the store itself as said, then run `rotator plan {cred.name}` again"


def _denied_fix(cred: CredentialConfig, store: StoreConfig) -> str:
    """The fix for a store that refuses this runner, in what that store's access is made of: a policy (Vault, AWS),
    a token (Doppler), a file's owner and mode (dotenv)."""
    again = f"then run `rotator plan {cred.name}` again"
    if store.type == "vault":
        return f"grant the runner what the message names (its Vault policy for store {store.name}), {again}"
    if store.type == "aws":
        return f"grant the runner what the message names (its IAM policy for store {store.name}), {again}"
    if store.type == "doppler":
        variable = store.options.get("token_env", "DOPPLER_TOKEN")
        return (
            f"put a token that may read and write this config in ${variable} (the message says what is wrong), {again}"
        )
    if store.type == "env":
        return f"give this runner's user the folders and files the message names (owner and mode), {again}"
    return f"give this runner the access the message names for store {store.name}, {again}"


def _ledger(runtime: Runtime, cred: CredentialConfig, current: StoredKey | None) -> list[Finding]:
    """The record and pause: the key's age, when it is due, an unfinished rotation, a pause (all information)."""
    from rotator.rules.plan import age_findings

    part = f"ledger ({cred.store})"
    try:
        record, pause = runtime.read_ledger(cred)
    except StoreNotFound as exc:
        table = runtime.config.store(cred.store).options.get("ledger_table", "bluum-rotator-ledger")
        fix = (
            f"create the ledger table {table} (terraform/ makes it; or `aws dynamodb create-table --table-name "
            f"{table} --attribute-definitions AttributeName=ledger_id,AttributeType=S --key-schema "
            "AttributeName=ledger_id,KeyType=HASH --billing-mode PAY_PER_REQUEST`), or fix `ledger_table`"
        )
        return [from_error(part, exc, fix)]
    except RotatorError as exc:
        return [from_error(part, exc, _store_fix(runtime, cred, cred.store, exc))]
    return age_findings(
        None if current is None else current.label,
        record,
        pause,
        now=runtime.clock(),
        rotate_every=cred.rotate_every.total_seconds(),
        expiry_lead=cred.windows.expiry_lead,
        name=cred.name,
    )


def _shared(cred: CredentialConfig, current: StoredKey, holdings: list[Holding]) -> list[Finding]:
    from rotator.rules.identity import shared_with_others

    shared = shared_with_others(current, holdings, cred.name)
    if shared is None:
        return []
    return [
        Finding(
            f"store {cred.store}",
            f"its current key {current.label} is also held by {shared}: rotating one credential would revoke the "
            "key the other still uses",
            "give each credential its own key (one credential may have several stores: `also_deploy_to`)",
        )
    ]


def _bluum(runtime: Runtime, cred: CredentialConfig, current: StoredKey) -> list[Finding]:
    """Bluum accepts the current key: one read-only GET of the credential's `check_path`, paid by the key itself."""
    from rotator.rules.machine import transient_status

    part = f"Bluum {cred.base_url}"
    pair = KeyPair(
        api_key=current.api_key,
        api_secret=current.api_secret,
        environment=current.environment or cred.environment,
        key_id=current.key_id,
    )
    result = runtime.client(cred.base_url).check(pair, path=cred.check_path)
    if result.outcome.value == "works":
        return []
    if result.outcome.value == "inconclusive" and transient_status(result.status):
        fix = "check `base_url` and the network; run `rotator plan` again"
        return [
            Finding(
                part, f"Bluum did not answer the check of {current.label} ({result.reason})", fix, Severity.UNREACHABLE
            )
        ]
    return [
        Finding(
            part,
            f"Bluum does not accept the current key {current.label} ({result.reason}): unknown there, revoked, "
            f"expired, or a key of another environment than {cred.environment.value}",
            f"put the key applications should use in store {cred.store}, or replace it: `rotator rotate {cred.name} "
            "--emergency --reason TEXT`"
            + ("" if cred.issuer == "bluum" else " --new-key-file FILE (a new pair made in Bluum's dashboard)"),
        )
    ]


def _consumers(runtime: Runtime, cred: CredentialConfig, current: StoredKey) -> list[Finding]:
    """Each consumer answers its attestation, naming the current key (rotator/consumers/)."""
    consumers = runtime.config.consumers_of(cred.name)
    if not consumers:
        return []
    from rotator.attest import fingerprint
    from rotator.consumers.poll import poll_once

    found = []
    mine = fingerprint(current.api_key)
    for seen in poll_once(consumers, new_fingerprint=mine, old_fingerprint=None, credential=cred.name):
        part = f"consumer {seen.consumer} (store {seen.store})"
        if seen.outcome == "new":
            continue
        if seen.outcome == "other":
            problem = f"reports key {seen.reported}, not the current key {mine}"
            fix = f"reload it so that it reads store {seen.store} (its `reload` action), then plan again"
        else:
            problem = f"does not answer its attestation ({seen.detail or seen.outcome})"
            fix = f"start it, or fix its `url` or `command` in [stores.{seen.store}] consumers"
        found.append(Finding(part, problem, fix))
    return found
