"""What `rotator plan` checks of a dotenv store without writing: the folders a rotation writes in, by this user.

A rotation writes a new dotenv file beside the old one and renames it over (so the file's folder must be writable and
searchable by this user), keeps its stages in a sidecar in the state folder (which must exist or be creatable), and
takes a lock file beside the dotenv file. The safety rules (no folder others can write, no hard link) are the ones
`check_writable` already enforces before a rotation; a refusal there is a finding here.
"""

from __future__ import annotations

import os
from pathlib import Path

from rotator.core.errors import StoreError
from rotator.core.findings import Finding

__all__ = ["dotenv_access"]


def dotenv_access(part: str, file: Path, sidecar: Path, check_writable: object) -> list[Finding]:
    """Findings for one dotenv store: `file` the dotenv file, `sidecar` its state file, `check_writable` the store's
    own safety check (a callable raising StoreError)."""
    findings: list[Finding] = []
    uid = os.geteuid()
    folder = file.parent
    if not _usable_folder(folder):
        findings.append(
            Finding(
                part,
                f"this user (uid {uid}) cannot write in {folder}: a rotation writes the new file there and renames "
                "it over the old one",
                f"run the rotator as the folder's owner, or `chown {uid} {folder}` (keep it go-w)",
            )
        )
    state = _existing_parent(sidecar.parent)
    if not _usable_folder(state):
        findings.append(
            Finding(
                part,
                f"this user (uid {uid}) cannot write the state folder {sidecar.parent} (at {state}): the rotation "
                "record and the stages go there",
                f"`mkdir -p {sidecar.parent} && chown {uid} {sidecar.parent} && chmod 700 {sidecar.parent}`",
            )
        )
    if file.exists() and not os.access(file, os.R_OK):
        findings.append(Finding(part, f"this user (uid {uid}) cannot read {file}", f"`chown {uid} {file}`"))
    try:
        check_writable()  # type: ignore[operator]
    except StoreError as exc:
        findings.append(Finding(part, str(exc), "make the folder writable by its owner only (`chmod go-w`), as said"))
    return findings


def _usable_folder(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _existing_parent(folder: Path) -> Path:
    """`folder`, or its nearest ancestor that exists (a state folder a rotation would create)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder
