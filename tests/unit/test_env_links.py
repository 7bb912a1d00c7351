"""backends.env.links: which symlinks on the way to a dotenv file another user could have aimed (review of issue 16)."""

from __future__ import annotations

import os
from pathlib import Path

from backends.env.links import LinkSeen, link_problems, links_on

ROOT, ME, OTHER = 0, 0, 65534


def link(folder: str, *, mode: int = 0o40755, folder_uid: int = ROOT, link_uid: int = ROOT) -> LinkSeen:
    return LinkSeen(f"{folder}/app.env", folder, mode, folder_uid, link_uid)


def test_a_link_only_root_can_change_may_lead_anywhere() -> None:
    assert link_problems((link("/etc/app"),), "/srv/other/app.env", ME) == []


def test_another_users_link_may_lead_below_its_folder_only() -> None:
    mine = link("/srv/app", folder_uid=OTHER, link_uid=OTHER)
    assert link_problems((mine,), "/srv/app/releases/7/app.env", ME) == []
    [problem] = link_problems((mine,), "/etc/billing/billing.env", ME)
    assert f"uid {OTHER} can change" in problem
    assert "/etc/billing/billing.env" in problem
    assert link_problems((mine,), "/srv/application/app.env", ME), "a sibling with a common prefix is outside"


def test_a_link_in_a_folder_others_can_write_is_refused_unless_the_sticky_bit_protects_it() -> None:
    [problem] = link_problems((link("/srv/shared", mode=0o40777),), "/srv/app/app.env", ME)
    assert "every user can write" in problem
    assert "chmod go-w /srv/shared" in problem
    assert link_problems((link("/tmp", mode=0o41777, link_uid=ME),), "/srv/app/app.env", ME) == []
    assert link_problems((link("/tmp", mode=0o41777, link_uid=OTHER),), "/srv/app/app.env", ME)


def test_links_on_finds_folder_links_and_links_a_link_leads_through(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "app.env").write_text("")
    (tmp_path / "hop").symlink_to("real")
    (tmp_path / "via").symlink_to(tmp_path / "hop")
    (tmp_path / "app.env").symlink_to("via/app.env")
    seen = links_on(str(tmp_path / "app.env"))
    assert [s.link for s in seen] == [str(tmp_path / n) for n in ("app.env", "via", "hop")]
    assert all(s.folder == str(tmp_path) for s in seen)
    assert links_on(str(tmp_path / "real" / "missing" / "app.env")) == ()
    assert os.path.realpath(tmp_path / "app.env") == str(tmp_path / "real" / "app.env")


def test_resolve_agrees_with_realpath(tmp_path: Path) -> None:
    from backends.env.links import resolve

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "app.env").write_text("")
    (tmp_path / "up").symlink_to("a/b/..")
    (tmp_path / "rel").symlink_to("up/b/app.env")
    for path in ("rel", "up/b/app.env", "up/../a/b/app.env", "a/b/missing/x.env", "up/b/../b/./app.env"):
        full = str(tmp_path / path)
        assert resolve(full)[0] == os.path.realpath(full), path


def test_another_users_link_may_lead_to_a_folder_of_that_same_user() -> None:
    """Capistrano's shared/.env: releases/7/.env -> ../../shared/.env, all the deploy user's."""
    release = link("/var/www/app/releases/7", folder_uid=OTHER, link_uid=OTHER)
    assert link_problems((release,), "/var/www/app/shared/.env", ME, resolved_folder_uid=OTHER) == []
    assert link_problems((release,), "/etc/bluum/tenant.env", ME, resolved_folder_uid=ROOT)
