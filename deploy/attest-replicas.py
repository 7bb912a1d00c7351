#!/usr/bin/env python3
"""Attest for an application that runs as many replicas (a Kubernetes Deployment, an ECS service) or has no endpoint
of its own (a Lambda function): a `command` consumer of bluum-rotator (README "Consumers",
docs/consumer-attestation.md).

A consumer answers one fingerprint, but a Deployment is many pods, and during a rollout some hold the old key while
others hold the new one. So this asks EVERY replica that may still be calling Bluum and prints the fingerprint only
when all of them report the same one. Otherwise it prints nothing on stdout, says on stderr what each replica answered,
and exits non-zero: the rotator reads that as "unreachable: exit N" and never as "on the new key", so the old key is
not revoked while one replica may still use it. (It never prints one replica's fingerprint for all: that would be the
new key's while another replica still calls with the old one.)

    attest-replicas.py kubectl --selector app=trading --port 9001 [--namespace NS] [--path /-/bluum-key]
        each Running pod (terminating ones too: they still call Bluum until they exit), through the API server's pod
        proxy: `kubectl get --raw /api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH` (RBAC: get, list pods; get
        pods/proxy). No tool is needed in the image; the app serves its answer on the pod's IP.
    attest-replicas.py ecs --cluster prod --service trading --port 9001 [--path /-/bluum-key]
        each task that is running or still stopping (`aws ecs list-tasks`, `describe-tasks`), over HTTP to the task's
        private IP (awsvpc network mode), so the rotator must run inside the VPC.
    attest-replicas.py lambda --function-name trading-orders [--qualifier live]
        invokes the function once with {"bluum_attest": true}; its handler answers {"fingerprint": ...} from the key
        it holds in memory (README "Consumers", Lambda). That proves one execution environment, see the README.

Exit codes: 0 all replicas agree (the fingerprint is on stdout); 1 the listing itself failed (kubectl or aws failed,
bad arguments); 2 no replica runs (nothing to ask); 3 a replica gave no fingerprint (no answer, an error, a malformed
one); 4 replicas answered with different fingerprints (a rollout not finished, or a replica that did not reload).

Python 3.11+ standard library only: copy it beside rotator.toml. It reads no key and no secret.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

FINGERPRINT = re.compile(r"sha256:[0-9a-f]{16}")
MAX_ANSWER = 4096
EXIT_TOOL, EXIT_NONE, EXIT_NO_ANSWER, EXIT_DISAGREE = 1, 2, 3, 4
STILL_RUNNING = ("RUNNING", "DEACTIVATING", "STOPPING")
"""ECS task states in which the application may still be calling Bluum (a stopping task drains with its old key)."""

Replica = tuple[str, Callable[[], str | None]]
"""A replica's name and how to ask it (returns its answer's text, or None when it gave none)."""


class ToolFailed(Exception):
    """kubectl or aws failed: the replicas could not be listed."""


def parse_answer(text: str | None) -> str | None:
    """The fingerprint in an answer (docs/consumer-attestation.md): a JSON object's "fingerprint", or one line."""
    if text is None or len(text) > MAX_ANSWER:
        return None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped).get("fingerprint")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) and FINGERPRINT.fullmatch(value) else None
    return stripped if FINGERPRINT.fullmatch(stripped) else None


def run(argv: Sequence[str], timeout: float) -> str:
    """A tool's stdout; ToolFailed when it cannot start, fails or outlives `timeout`."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolFailed(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ToolFailed(f"{' '.join(argv[:3])} exited {done.returncode}: {last}")
    return done.stdout


def http_get(url: str, timeout: float) -> str | None:
    """GET `url` with no proxy and no redirect followed; the body of a 200 answer, else None."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    try:
        with opener.open(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            body: bytes = response.read(MAX_ANSWER + 1)
            return body.decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def kubectl_replicas(args: argparse.Namespace) -> list[Replica]:
    """Every pod of the selector that may hold a key: phase Running (terminating pods included)."""
    base = ["kubectl"] + (["--context", args.context] if args.context else [])
    listed = json.loads(run([*base, "get", "pods", "-n", args.namespace, "-l", args.selector, "-o", "json"], 30))
    replicas: list[Replica] = []
    for pod in listed.get("items", []):
        if pod.get("status", {}).get("phase") != "Running":
            continue  # Pending: will read the store when it starts; Succeeded/Failed: holds nothing
        name = pod["metadata"]["name"]
        raw = f"/api/v1/namespaces/{args.namespace}/pods/{name}:{args.port}/proxy{args.path}"
        argv = [*base, "get", "--raw", raw, f"--request-timeout={int(args.replica_timeout)}s"]
        replicas.append((f"pod/{name}", _tool_answer(argv, args.replica_timeout + 5)))
    return replicas


def ecs_replicas(args: argparse.Namespace) -> list[Replica]:
    """Every task of the service that runs or is still stopping (desired STOPPED, last status not yet STOPPED)."""
    base = ["aws", "ecs"]
    where = ["--cluster", args.cluster]
    arns: list[str] = []
    for desired in ("RUNNING", "STOPPED"):
        argv = [*base, "list-tasks", *where, "--service-name", args.service, "--desired-status", desired]
        arns += json.loads(run([*argv, "--output", "json"], 60)).get("taskArns", [])
    replicas: list[Replica] = []
    for start in range(0, len(arns), 100):  # describe-tasks takes up to 100 tasks
        argv = [*base, "describe-tasks", *where, "--tasks", *arns[start : start + 100], "--output", "json"]
        for task in json.loads(run(argv, 60)).get("tasks", []):
            if task.get("lastStatus") not in STILL_RUNNING:
                continue
            name = "task/" + task["taskArn"].rsplit("/", 1)[-1]
            address = _task_address(task)
            url = None if address is None else f"http://{address}:{args.port}{args.path}"
            replicas.append((name, _http_answer(url, args.replica_timeout)))
    return replicas


def _task_address(task: dict[str, Any]) -> str | None:
    """The task's private IPv4 address (awsvpc network mode: its ElasticNetworkInterface attachment)."""
    for attachment in task.get("attachments") or []:
        if attachment.get("type") != "ElasticNetworkInterface":
            continue
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address":
                return str(detail.get("value"))
    return None


def lambda_replicas(args: argparse.Namespace) -> list[Replica]:
    """One invocation of the function (it has no endpoint): the probe handler answers from its key in memory."""

    def invoke() -> str | None:
        with tempfile.TemporaryDirectory() as folder:
            out, probe = os.path.join(folder, "answer.json"), os.path.join(folder, "probe.json")
            with open(probe, "w", encoding="utf-8") as event:
                event.write('{"bluum_attest": true}')
            # fileb:// reads the payload as raw bytes in aws CLI v1 and v2 alike (v2 takes a bare --payload as base64)
            argv = ["aws", "lambda", "invoke", "--function-name", args.function_name, "--payload", f"fileb://{probe}"]
            argv += ["--qualifier", args.qualifier] if args.qualifier else []
            meta = json.loads(run([*argv, "--output", "json", out], args.replica_timeout + 10))
            if meta.get("FunctionError") or meta.get("StatusCode") != 200:
                return None  # aws lambda invoke exits 0 when the function itself failed
            with open(out, encoding="utf-8") as answer:
                return answer.read(MAX_ANSWER + 1)

    return [(f"lambda/{args.function_name}", invoke)]


def _http_answer(url: str | None, timeout: float) -> Callable[[], str | None]:
    return lambda: None if url is None else http_get(url, timeout)


def _tool_answer(argv: list[str], timeout: float) -> Callable[[], str | None]:
    def ask() -> str | None:
        try:
            return run(argv, timeout)
        except ToolFailed:
            return None

    return ask


def verdict(answers: dict[str, str | None]) -> tuple[int, str]:
    """The exit code and stdout for the replicas' answers (their text, None when they gave none)."""
    if not answers:
        return EXIT_NONE, ""
    found = {name: parse_answer(text) for name, text in answers.items()}
    if any(value is None for value in found.values()):
        return EXIT_NO_ANSWER, ""
    distinct = set(found.values())
    if len(distinct) != 1:
        return EXIT_DISAGREE, ""
    return 0, distinct.pop() + "\n"  # type: ignore[operator]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replica-timeout", type=float, default=5.0, help="seconds per replica (default 5)")
    parser.add_argument("--path", default="/-/bluum-key", help="the answer's path (default /-/bluum-key)")
    kinds = parser.add_subparsers(dest="kind", required=True)
    k8s = kinds.add_parser("kubectl")
    k8s.add_argument("--selector", "-l", required=True)
    k8s.add_argument("--port", required=True)
    k8s.add_argument("--namespace", "-n", default="default")
    k8s.add_argument("--context")
    ecs = kinds.add_parser("ecs")
    ecs.add_argument("--cluster", required=True)
    ecs.add_argument("--service", required=True)
    ecs.add_argument("--port", required=True)
    fn = kinds.add_parser("lambda")
    fn.add_argument("--function-name", required=True)
    fn.add_argument("--qualifier", help="the alias or version callers invoke (default: $LATEST)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_TOOL if exc.code else 0
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    listing = {"kubectl": kubectl_replicas, "ecs": ecs_replicas, "lambda": lambda_replicas}[args.kind]
    try:
        replicas = listing(args)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(32, len(replicas)))) as pool:
            futures = {name: pool.submit(ask) for name, ask in replicas}
            answers = {name: future.result() for name, future in futures.items()}
    except (ToolFailed, ValueError, KeyError) as exc:
        print(f"attest-replicas: could not list the replicas: {exc}", file=sys.stderr)
        return EXIT_TOOL
    code, out = verdict(answers)
    for name, text in answers.items():
        print(f"{name}: {parse_answer(text) or 'no fingerprint'}", file=sys.stderr)
    if code == EXIT_NONE:
        print("attest-replicas: no replica runs: nothing holds a key to ask", file=sys.stderr)
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
