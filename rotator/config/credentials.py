"""The `[credentials.NAME]` tables: a key pair, who mints it, where it is deployed, and how often it rotates.

Each table is read into a draft on its own; then the references between credentials and to stores are checked, so
the engine can rely on them:
- every store, also_deploy_to and manager reference resolves; a store holds exactly one credential;
- I7 at the configuration level: a credential's manager is a credential of the same environment (its base URL is
  checked in rotator/config/endpoints.py);
- rotate_every is at most 90 days (Bluum's rule) and the overlap (grace) is shorter than it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rotator.config import credential_fields as fields
from rotator.config import credential_links as links
from rotator.config.credential_model import SEEDED_KEY_AGES, CredentialConfig, CredentialDraft
from rotator.config.endpoints import parse_base_url, parse_paths
from rotator.config.rollout import ROLLOUT_KEYS, parse_rollout
from rotator.config.tables import README_HINT, Problems, Table, did_you_mean, named_tables

__all__ = ["CREDENTIAL_KEYS", "MINIMAL_EXAMPLE", "parse_credentials"]
"""What a credential becomes, and its limits, are rotator/config/credential_model.py's; this module is the order of
parsing."""

MINIMAL_EXAMPLE: Final = """\
    [stores.app]
    type = "env"
    path = "app.env"

    [credentials.app]
    environment = "sandbox"
    issuer = "manual"
    store = "app\""""

CREDENTIAL_KEYS: Final = (
    "environment",
    "base_url",
    "issuer",
    "investor_id",
    "manager",
    "store",
    "also_deploy_to",
    "rotate_every",
    "grace",
    "verify_timeout",
    "check_path",
    "api_keys_path",
    "seeded_key_age",
    *ROLLOUT_KEYS,
    "consumer_wait",
    "windows",
)


def parse_credentials(data: Mapping[str, Any], problems: Problems) -> dict[str, CredentialConfig]:
    """Each credential on its own, then the references between them and to stores.

    References are checked against every name the file defines, even a table that has problems of its own, so
    one mistake is reported once rather than again at each place that mentions it.
    """
    raw_credentials = data.get("credentials")
    if raw_credentials is None or raw_credentials == {}:
        problems.add(
            "credentials",
            "no credentials are defined, so there is nothing to rotate",
            f"add at least one [credentials.NAME] table and the store it lives in, e.g.\n{MINIMAL_EXAMPLE}\n"
            f"({README_HINT})",
        )
        return {}
    tables = named_tables(raw_credentials, "credentials", problems)
    raw_stores = data.get("stores")
    store_names = list(raw_stores) if isinstance(raw_stores, dict) else []
    drafts = {name: _parse_credential(name, raw, store_names, problems) for name, raw in tables.items()}
    all_credential_names = list(raw_credentials) if isinstance(raw_credentials, dict) else []
    for draft in drafts.values():
        links.check_manager(draft, drafts, all_credential_names, problems)
    links.check_store_sharing(drafts, problems)
    if problems.items:
        return {}
    return {name: draft.finish() for name, draft in drafts.items()}


def _parse_credential(name: str, raw: Mapping[str, Any], store_names: list[str], problems: Problems) -> CredentialDraft:
    """One [credentials.NAME] table into a draft; every problem is recorded, none raised."""
    table = Table(raw, f"credentials.{name}", problems)
    table.check_keys(CREDENTIAL_KEYS)
    draft = CredentialDraft(name=name)
    draft.environment = fields.parse_environment(table)
    draft.issuer = fields.parse_issuer(table)
    draft.investor_id = fields.parse_investor_id(table)
    draft.manager = table.text("manager", example='"tenant"')
    fields.check_issuer_fields(table, draft.issuer)
    draft.base_url = parse_base_url(table, draft.environment)
    links.parse_targets(table, draft, store_names)
    fields.parse_timing(table, draft)
    draft.check_path, draft.api_keys_path = parse_paths(table, draft.base_url)
    draft.rollout = parse_rollout(table)
    seeded = table.text("seeded_key_age", example='"count"')
    if seeded is not None and seeded not in SEEDED_KEY_AGES:
        table.problem(
            "seeded_key_age",
            f"must be one of {', '.join(SEEDED_KEY_AGES)}{did_you_mean(seeded, SEEDED_KEY_AGES)}",
            'write seeded_key_age = "count" (age from Bluum, or from first seen) or "due" (rotate at the next run)',
        )
    elif seeded is not None:
        draft.seeded_key_age = seeded
    return draft
