"""The Doppler store: a deploy target (`also_deploy_to`) through Doppler's REST API; never a ledger or a primary."""

from backends.doppler.store import DopplerStore

__all__ = ["DopplerStore"]
