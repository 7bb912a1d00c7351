"""rotator.core.path_walk: every folder and link the system meets on the way to a path, as the kernel resolves it."""

from __future__ import annotations

from pathlib import Path

from rotator.core.path_walk import places_on_the_way


def test_a_link_whose_target_is_a_link_in_another_folder_lists_that_folder(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "link").symlink_to(tmp_path / "c")
    (tmp_path / "a").symlink_to(tmp_path / "b" / "link")
    places, complete = places_on_the_way(tmp_path / "a")
    assert complete
    assert str(tmp_path / "b") in places, "the folder holding the middle link"
    assert str(tmp_path / "b" / "link") in places
    assert places[-1] == str(tmp_path / "c"), "the resolved path comes last"


def test_dot_dot_after_a_link_goes_up_from_where_the_link_leads(tmp_path: Path) -> None:
    (tmp_path / "far" / "sub").mkdir(parents=True)
    (tmp_path / "far" / "state").mkdir()
    (tmp_path / "lnk").symlink_to(tmp_path / "far" / "sub")
    places, complete = places_on_the_way(f"{tmp_path}/lnk/../state")
    assert complete
    assert places[-1] == str(tmp_path / "far" / "state")


def test_a_missing_component_or_a_loop_is_incomplete(tmp_path: Path) -> None:
    places, complete = places_on_the_way(tmp_path / "missing" / "deeper")
    assert not complete
    assert places[-1] == str(tmp_path)
    (tmp_path / "x").symlink_to(tmp_path / "y")
    (tmp_path / "y").symlink_to(tmp_path / "x")
    _, complete = places_on_the_way(tmp_path / "x")
    assert not complete


def test_a_relative_link_is_followed_from_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "rel").symlink_to("e")
    places, complete = places_on_the_way(tmp_path / "d" / "rel")
    assert complete
    assert places[-1] == str(tmp_path / "d" / "e")
