"""`rotator plan`: each reload action and health check of a credential's targets can run when the rotation needs it.

A command's program must exist and be one only root and this user can change (rotator/rotation/reload_check.py, the
same check `rotate` makes before it creates anything). A URL must resolve and something must listen at its port: a
TCP connect (rotator/core/reach.py), never a request, since a reload URL's request is the reload itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.core.findings import Finding

if TYPE_CHECKING:
    from rotator.config.loader import CredentialConfig
    from rotator.config.reloads import ReloadAction
    from rotator.rotation.runtime import Runtime

__all__ = ["reload_findings", "url_findings"]


def reload_findings(runtime: Runtime, cred: CredentialConfig) -> list[Finding]:
    """A finding per reload action or health check of `cred`'s targets that could not run now, with its fix."""
    stores = runtime.config.stores
    found: list[Finding] = []
    for store in cred.targets:
        for action in stores[store].reload if store in stores else ():
            probes: list[tuple[str, ReloadAction]] = [("reload", action)]
            if action.health is not None and action.health.kind != "consumer":
                probes.append(("health check", action.health.probe(cred.rollout.health_timeout, action.pass_env)))
            for what, probe in probes:
                problem = _problem(probe)
                if problem is not None:
                    found.append(
                        Finding(
                            f"{what} of store {store} ({probe.describe()})",
                            problem,
                            f"fix `reload` in [stores.{store}]: "
                            + (
                                "start what should answer there, or correct the URL"
                                if probe.kind == "url"
                                else "the program's full path, or install it on this host"
                            ),
                        )
                    )
    return found


def _problem(action: ReloadAction) -> str | None:
    if action.kind == "url":
        from rotator.core.reach import unreachable

        return unreachable(action.url)
    from rotator.rotation.reload_check import command_problem

    return command_problem(action)


def url_findings(runtime: Runtime) -> list[Finding]:
    """Each webhook notification's URL can be reached (a TCP connect): a rotation's news must get out."""
    from rotator.core.reach import unreachable

    found = []
    for sink in runtime.config.notifications:
        url = getattr(sink, "url", None)
        if not isinstance(url, str):
            continue
        problem = unreachable(url)
        if problem is not None:
            found.append(
                Finding(
                    f"notification {sink.name} (webhook)",
                    f"{problem}: rotations would not be announced there",
                    f"start the receiver, or correct `url` in [notifications.{sink.name}]",
                )
            )
    return found
