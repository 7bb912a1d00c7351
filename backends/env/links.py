"""Every symlink on the way to a dotenv file, and whether the rotator may write through it.

Why: the pin (`backends.env.target`) refuses a link changed DURING a rotation; a link planted BEFORE the rotation
starts was followed as the deployer's own. Whoever owns the application's folder (its user, allowed to own it), or can
write any folder on the configured path, could point the file, or a folder on the way, at another application's
file in a folder only root can write: root then rotated that file's key (writing the investor's new key there and
revoking the key it held, a bystander's). So, before anything changes, each link on the way (a folder component
too, and links a link leads through) must be one only root or the rotator's user can change, or lead no further than
below the folder of the user who can: a deployer's release link (`app.env -> releases/7/app.env`) stays fine.

`resolve` looks (lstat, readlink, stat of folders: nothing is opened for writing); `link_problems` decides, pure.

`resolve` walks as `rotator.core.path_walk` does wherever every part exists; where a part is missing, a link loops or
cannot be read, it goes on past it as `os.path.realpath` does (which `DotenvTarget.observe` compares it with: a file
yet to be made is normal), while path_walk stops there as the kernel would. So the two stay two walks; the link limit
is path_walk's.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from rotator.core.path_walk import MAX_LINKS

__all__ = ["LinkSeen", "link_problems", "links_on", "resolve"]


@dataclass(frozen=True, slots=True)
class LinkSeen:
    """One symlink met on the way to the file, and the (real) folder it sits in."""

    link: str
    """The link's path, in a real folder."""
    folder: str
    folder_mode: int
    folder_uid: int
    link_uid: int


def links_on(path: str) -> tuple[LinkSeen, ...]:
    """The symlinks met resolving `path`, in order."""
    return resolve(path)[1]


def resolve(path: str) -> tuple[str, tuple[LinkSeen, ...]]:
    """`path` resolved as the kernel does (component by component, a link's text resolved from its own folder), and
    the symlinks met on the way: one walk, so the links judged are the ones that led to the path written."""
    links: list[LinkSeen] = []
    start = "/" if path.startswith("/") else os.getcwd()
    resolved = _walk(start, path, links)
    return resolved, tuple(links)


def _walk(start: str, text: str, links: list[LinkSeen]) -> str:
    current = "/" if text.startswith("/") else start
    parts = [part for part in text.split("/") if part not in ("", ".")]
    for index, part in enumerate(parts):
        if part == "..":
            current = os.path.dirname(current) or "/"
            continue
        candidate = os.path.join(current, part)
        try:
            seen = os.lstat(candidate)
        except OSError:  # not there (yet): nothing further to follow
            return os.path.join(candidate, *parts[index + 1 :])
        if not stat.S_ISLNK(seen.st_mode):
            current = candidate
            continue
        if len(links) >= MAX_LINKS:  # a longer chain is a loop, which the store's read names
            return candidate
        try:
            folder = os.stat(current)
            target = os.readlink(candidate)
        except OSError:
            return candidate
        links.append(LinkSeen(candidate, current, folder.st_mode, folder.st_uid, seen.st_uid))
        current = _walk(current, target, links)
    return current


def link_problems(
    links: tuple[LinkSeen, ...], resolved: str, euid: int, resolved_folder_uid: int | None = None
) -> list[str]:
    """Why the rotator must not write `resolved` through `links` (empty: it may). Pure.

    A link can be replaced by its folder's owner, and, in a folder its group or every user may write, by them too
    (unless the sticky bit keeps them from a link of the rotator's own user or root's); in a sticky folder its own
    owner may replace it as well. Such a link may lead only below its own folder, or to a folder of that same user
    (`resolved_folder_uid`: the owner of the resolved file's folder): that user could have written there anyway."""
    problems: list[str] = []
    for seen in links:
        mode, sticky = seen.folder_mode, bool(seen.folder_mode & stat.S_ISVTX)
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky and seen.link_uid in (0, euid)):
            who = "every user" if mode & stat.S_IWOTH else "its group"
            problems.append(
                f"{seen.link} is a symlink in folder {seen.folder} (mode {oct(stat.S_IMODE(mode))}, owner uid "
                f"{seen.folder_uid}), which {who} can write: anyone of them could point it at any file the rotator "
                f"may write. Fix: `chmod go-w {seen.folder}`, or set `path` to {resolved} itself"
            )
            continue
        others = {seen.folder_uid} | ({seen.link_uid} if sticky else set())
        others -= {0, euid}
        if not others:
            continue
        owner = min(others)
        inside = os.path.commonpath([seen.folder, resolved]) == seen.folder
        theirs = resolved_folder_uid is not None and {resolved_folder_uid} == others
        if len(others) > 1 or not (inside or theirs):
            problems.append(
                f"{seen.link} is a symlink that uid {owner} can change (the link or its folder {seen.folder} is that "
                f"user's), and it leads out of that folder, to {resolved} in a folder that user does not own: the "
                "rotator would write there, and revoke the key it holds, for a user who may not. Fix: set `path` to "
                f"{resolved} itself, or make the link and its folder root's (or the rotator's user's)"
            )
    return list(dict.fromkeys(problems))
