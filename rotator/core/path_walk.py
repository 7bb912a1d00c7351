"""Every place the system looks at to find a path: each folder on the way, each symbolic link met, and each folder on
the way to where that link points, hop after hop.

Why: whoever can write a folder that holds a link on the way can point the link elsewhere, so a check that judges
who could change a path (rotator.toml's trust, the rotator's state folder) must judge every such folder. The resolved
path's folders (`os.path.realpath`) are not enough: with `a -> b/link` and `b/link -> c`, the folder `b` is on
neither the written path nor the resolved one, and its owner decides where the path leads.
"""

from __future__ import annotations

import os
import stat

__all__ = ["MAX_LINKS", "places_on_the_way"]

MAX_LINKS = 40
"""The links followed before giving up, as the kernel does (ELOOP)."""


def places_on_the_way(path: str | os.PathLike[str]) -> tuple[list[str], bool]:
    """(places, complete): every path looked at, in the order the system meets them, from `/` down (a folder, a
    link, the folders the link's target goes through, ..., the path itself resolved); `complete` is False when a
    component is missing (the walk stops there: the last place is the deepest that exists) or a link loops. Each
    place is listed once, the resolved path last when it exists. lstat only: nothing is opened. OSError other than a
    missing component (a folder this user may not search) as lstat raised it."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        text = os.path.join(os.getcwd(), text)
    pending = [part for part in text.split("/") if part]
    current = "/"
    places = ["/"]
    links = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return list(dict.fromkeys(places)), False
        places.append(candidate)
        if not stat.S_ISLNK(mode):
            current = candidate
            continue
        links += 1
        if links > MAX_LINKS:
            return list(dict.fromkeys(places)), False
        target = os.readlink(candidate)
        if os.path.isabs(target):
            current = "/"
        pending = [part for part in target.split("/") if part] + pending
    return [place for place in dict.fromkeys(places) if place != current] + [current], True
