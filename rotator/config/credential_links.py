"""The references a `[credentials.NAME]` table makes: to its stores, and to the credential that manages it.

Checked against every name the file defines, even a table with problems of its own, so one mistake is reported
once. A store holds exactly one credential; a manager is another credential of the same environment (I7).
"""

from __future__ import annotations

from collections.abc import Mapping

from rotator.config.credential_model import CredentialDraft
from rotator.config.tables import Problems, Table, did_you_mean, list_names


def parse_targets(table: Table, draft: CredentialDraft, store_names: list[str]) -> None:
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


def check_manager(
    draft: CredentialDraft, drafts: Mapping[str, CredentialDraft], all_names: list[str], problems: Problems
) -> None:
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


def check_store_sharing(drafts: Mapping[str, CredentialDraft], problems: Problems) -> None:
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
