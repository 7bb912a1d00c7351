"""The Vault / OpenBao KV v2 store.

This face keeps `backends.vault:VaultStore` (the entry point) valid.
"""

from backends.vault.store import STATE_PREFIX, VaultStore

__all__ = ["STATE_PREFIX", "VaultStore"]
