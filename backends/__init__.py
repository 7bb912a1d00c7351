"""Pluggable secret stores. Each module imports its own SDK, and only when it is used."""
