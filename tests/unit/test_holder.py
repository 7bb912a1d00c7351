"""A lease holder is judged gone only from the very same place, and only when the kernel says its PID is gone."""

from __future__ import annotations

from dataclasses import replace

from backends.holder import HolderProcess, this_process

NO_SUCH_PID = 2**22 + 12345  # above Linux's largest pid_max: no process can have it


def test_this_process_is_alive() -> None:
    here = this_process()
    assert here.boot_id is not None
    assert here.pid_namespace is not None
    assert not here.certainly_gone()


def test_a_vanished_pid_in_the_same_place_is_gone() -> None:
    assert replace(this_process(), pid=NO_SUCH_PID).certainly_gone()


def test_a_living_pid_in_the_same_place_is_not_gone() -> None:
    assert not replace(this_process(), pid=1).certainly_gone()  # init exists (EPERM or not, it is there)


def test_another_host_boot_or_namespace_is_never_judged() -> None:
    dead_here = replace(this_process(), pid=NO_SUCH_PID)
    assert not replace(dead_here, host="other-machine").certainly_gone()
    assert not replace(dead_here, boot_id="another-boot").certainly_gone()
    assert not replace(dead_here, pid_namespace="pid:[1]").certainly_gone()
    assert not replace(dead_here, boot_id=None).certainly_gone()


def test_what_a_lease_recorded_round_trips_and_junk_counts_as_alive() -> None:
    here = this_process()
    assert HolderProcess.from_json(here.to_json()) == here
    assert HolderProcess.from_json(None) is None
    assert HolderProcess.from_json({"host": "h", "pid": "7"}) is None
    assert HolderProcess.from_json({"host": "h", "pid": True}) is None
