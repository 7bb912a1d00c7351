"""The dotenv store.

This face keeps `backends.env:EnvStore` (the entry point) valid.
"""

from backends.env.store import EnvStore

__all__ = ["EnvStore"]
