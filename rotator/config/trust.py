"""Whether rotator.toml may be believed: who, besides its owner and root, could have written it.

Why: rotator.toml names the commands run after each rotation (reload actions), the hosts keys are sent to and the
files keys are written to. Run as root, as the README's cron and systemd examples do, whoever can change it runs
commands as root and is handed keys; and the daemon reads it again before every tick, so a change takes effect with
nobody restarting anything. So, as OpenSSH's StrictModes does for authorized_keys, the file and every folder above
it are judged before a byte of it is parsed:

- the file and every folder above it belong to root or to the user running the rotator (a file or folder of another
  user is that user's to change, or to swap);
- none of them can be written by everyone, nor by a group that has members besides its owner and root; a folder with
  the sticky bit (like /tmp) is the exception, since there only an entry's owner may rename or remove it. A user's
  private group (the group of the same name that Debian and Ubuntu give each user, and why their umask is 002) has
  no one else in it, so a file it may write is still only its owner's;
- a symbolic link on the way is followed, and the folders holding the link are judged too (whoever can write them
  can point the link elsewhere), for every link met on the way, hop after hop (rotator/core/path_walk.py), and so is
  each link's owner (in a sticky folder such as /tmp, a link's owner may replace it);
- the folder where a read-only volume is mounted (a Kubernetes ConfigMap, whose mount point shows mode 777; a `:ro`
  bind mount) cannot be changed through that mount, whatever its mode bits say; but its owner still changes it where
  it is mounted writable (a `:ro` bind mount of /home/alice/cfg is alice's to edit on the host), so the owner rule
  holds; and a folder deeper in a read-only view (systemd's ProtectSystem=strict makes all of / one) is judged by its
  modes, which apply outside that view.

POSIX ACLs and mandatory access control are not read: the mode bits and owners are what `ls -l` shows and what this
judges. `judge` is the decision, pure; `check_config_trusted` gathers what it needs (lstat/stat) and raises.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rotator.core.errors import ConfigUntrusted
from rotator.core.path_walk import places_on_the_way

__all__ = ["Entry", "check_config_trusted", "judge", "trust_problems"]


@dataclass(frozen=True, slots=True)
class Entry:
    """What `judge` needs to know of the file or one folder above it."""

    path: str
    uid: int
    mode: int
    is_dir: bool
    owner: str = ""
    """The owner's user name, when known (for messages)."""
    private_group: bool = False
    """Nobody but the owner and root is in the entry's group (nor has it as primary group)."""
    read_only: bool = False
    """On a file system mounted read-only (a Kubernetes ConfigMap, a `:ro` bind mount): its mode bits cannot be used
    through this mount (its owner may still change it where it is mounted writable)."""
    is_link: bool = False
    """A symbolic link on the way: its mode means nothing, but its owner may replace it where the folder is sticky
    (/tmp), so only its owner is judged."""


def judge(entries: Iterable[Entry], euid: int) -> tuple[list[str], list[str]]:
    """(problems, fixes): one problem line per entry that another user could change, and the commands that fix
    them. Empty lists: the file can be trusted. Pure."""
    problems: list[str] = []
    fixes: list[str] = []
    for entry in entries:
        kind = "folder" if entry.is_dir else "file"
        owner = f"{entry.owner} (uid {entry.uid})" if entry.owner else f"uid {entry.uid}"
        mode = stat.filemode(entry.mode)
        if entry.is_link:
            if entry.uid not in (0, euid):
                problems.append(
                    f"the symbolic link {entry.path} belongs to {owner}, who is neither root nor the user running the "
                    f"rotator (uid {euid}), so that user can point it elsewhere (in a sticky folder such as /tmp its "
                    "owner may replace it)"
                )
                fixes.append(f"chown -h {'root' if euid == 0 else euid} {entry.path}")
            continue
        if entry.uid not in (0, euid):
            where = " where it is mounted writable (here it is a read-only mount)" if entry.read_only else ""
            problems.append(
                f"the {kind} {entry.path} belongs to {owner}, who is neither root nor the user running the rotator "
                f"(uid {euid}), so that user can change {'what is in it' if entry.is_dir else 'it'}{where}"
            )
            fixes.append(f"chown {'root' if euid == 0 else euid} {entry.path}")
        sticky_folder = entry.is_dir and entry.mode & stat.S_ISVTX
        writable = entry.mode & stat.S_IWOTH or (entry.mode & stat.S_IWGRP and not entry.private_group)
        if writable and not sticky_folder and not entry.read_only:
            who = "everyone" if entry.mode & stat.S_IWOTH else "its group"
            problems.append(f"the {kind} {entry.path} ({mode}) can be written by {who}")
            fixes.append(f"chmod go-w {entry.path}")
    return problems, fixes


def check_config_trusted(path: Path, *, euid: int | None = None) -> None:
    """Raise ConfigUntrusted (exit 2, nothing read) when another user could change the configuration at `path`.

    A file that cannot be examined is left to the read that follows, whose error says why."""
    euid = os.geteuid() if euid is None else euid
    problems, fixes = trust_problems(path, euid=euid)
    if not problems:
        return
    lines = "\n".join(f"  - {problem}" for problem in problems)
    raise ConfigUntrusted(
        f"{path}: refused: it decides which commands the rotator runs (as uid {euid}) and where keys are sent, and "
        f"another user could change it:\n{lines}\nFix: {'; '.join(dict.fromkeys(fixes))} (then run the command again)",
        problems=problems,
        fixes=fixes,
    )


def trust_problems(path: Path, *, euid: int | None = None) -> tuple[list[str], list[str]]:
    """(problems, fixes) of the file at `path` and every folder on the way to it, as `judge` finds them: empty when
    only root and `euid` could change it. Also for the programs rotator.toml names (rotator/rotation/reload_check.py),
    which the rotator runs as its own user. A file that cannot be examined has no problems here (its use says why)."""
    euid = os.geteuid() if euid is None else euid
    file, *folders = _places(path)
    try:
        entries = [_entry(file)]
    except OSError:
        return [], []
    unseen: list[tuple[str, str]] = []
    for folder in folders:
        try:
            entries.append(_entry(folder))
        except OSError as exc:  # a folder above a readable file that cannot be looked at cannot be vouched for
            unseen.append((folder, str(exc.strerror or exc)))
    problems, fixes = judge(entries, euid)
    problems += [f"the folder {folder} cannot be examined ({why})" for folder, why in unseen]
    fixes += [f"check the folder {folder} (ls -ld)" for folder, _ in unseen]
    return problems, fixes


def _places(path: Path) -> list[str]:
    """The file (its target, when a link) first, then every folder that holds it or a link on the way to it."""
    absolute = os.path.abspath(path)
    places = [os.path.realpath(absolute)]
    prefix = absolute
    while True:
        parent = os.path.dirname(prefix)
        places.extend(_folders_up(os.path.realpath(parent)))
        if parent == prefix:
            break
        prefix = parent
    places.extend(_folders_up(os.path.dirname(places[0])))
    try:  # a link's own folder, hop after hop (a -> b/link -> c: b decides)
        walked, _ = places_on_the_way(path)  # as written: `link/..` is where the link leads, then up
    except OSError:  # a folder that cannot be searched: the folders above are judged, the read says the rest
        walked = []
    places.extend(place for place in walked if place != places[0])  # each link too: its owner is judged
    return list(dict.fromkeys(places))


def _folders_up(folder: str) -> Sequence[str]:
    found = [folder]
    while (parent := os.path.dirname(folder)) != folder:
        found.append(parent)
        folder = parent
    return found


def _entry(name: str) -> Entry:
    info = os.lstat(name)
    if stat.S_ISLNK(info.st_mode):
        read_only = bool(os.statvfs(os.path.dirname(name)).f_flag & os.ST_RDONLY)
        return Entry(name, info.st_uid, info.st_mode, False, _user(info.st_uid), read_only=read_only, is_link=True)
    private = bool(info.st_mode & stat.S_IWGRP) and _private_group(info.st_gid, info.st_uid)
    # Only where a read-only volume is mounted (a ConfigMap's 777 folder): a folder deeper in a read-only view, such
    # as systemd's ProtectSystem=strict gives a whole unit, is writable by its modes outside that view.
    read_only = bool(os.statvfs(name).f_flag & os.ST_RDONLY) and _is_mount_point(name)
    return Entry(name, info.st_uid, info.st_mode, stat.S_ISDIR(info.st_mode), _user(info.st_uid), private, read_only)


def _is_mount_point(name: str) -> bool:
    """Whether a file system is mounted at `name`: a bind mount of a folder of the same file system is one too, which
    `os.path.ismount` (comparing devices) cannot see, so /proc/self/mountinfo is read when there is one."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
            points = {_unescape(line.split(" ")[4]) for line in table if line.count(" ") >= 4}
    except OSError:
        return os.path.ismount(name)
    return os.path.realpath(name) in points or name in points


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline and backslash in a path as octal escapes (\\040 ...)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _private_group(gid: int, owner: int) -> bool:
    """Whether no user but `owner` and root can act with group `gid`: its listed members, and every user whose
    primary group it is. Looked up only for a group-writable entry; a group that cannot be looked up is not."""
    try:
        import grp
        import pwd

        group = grp.getgrgid(gid)
        allowed = {owner, 0}
        if any(pwd.getpwnam(member).pw_uid not in allowed for member in group.gr_mem):
            return False
        return all(user.pw_uid in allowed for user in pwd.getpwall() if user.pw_gid == gid)
    except (KeyError, ImportError):
        return False


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return ""
