"""deploy/attest-replicas.py and the README's consumer recipes (issue 19): the script that attests for many replicas
prints a fingerprint only when every replica that may still call Bluum reports the same one, and otherwise exits with
the code the README names, which the rotator's own poll reads as "unreachable", never as the new key.

No cluster, ECS service or Lambda function runs here: `kubectl` and `aws` are fake programs on PATH that print the
JSON the real tools print (shapes from their documentation: a PodList, `list-tasks`, `describe-tasks`, the metadata
of `lambda invoke`) and log the argument lists they were given; ECS tasks are real HTTP servers on loopback addresses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from rotator.attest import fingerprint, wsgi_app
from rotator.config.loader import parse_config_data
from rotator.consumers.poll import poll_once

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "attest-replicas.py"
README = (ROOT / "README.md").read_text()
NEW, OLD = fingerprint("pk_new_key"), fingerprint("pk_old_key")

FAKE = r'''#!{python}
"""A fake {tool}: answers from the JSON beside it, logs its argv."""
import json, pathlib, sys
here = pathlib.Path(__file__).parent
data = json.loads((here / "{tool}.json").read_text())
with open(here / "{tool}.log", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
for key, reply in data.items():
    if key in " ".join(args):
        if reply.get("write"):  # lambda invoke: the function's answer goes to the file named last
            pathlib.Path(args[-1]).write_text(reply["write"])
        sys.stdout.write(reply.get("stdout", ""))
        sys.stderr.write(reply.get("stderr", ""))
        sys.exit(reply.get("exit", 0))
sys.stderr.write("fake {tool}: nothing canned for " + " ".join(args) + "\n")
sys.exit(1)
'''


def pod(name: str, phase: str = "Running", terminating: bool = False) -> dict[str, object]:
    """A pod as `kubectl get pods -o json` lists it (the fields the script reads, and a few around them)."""
    metadata: dict[str, object] = {"name": name, "namespace": "prod", "labels": {"app": "trading"}}
    if terminating:
        metadata["deletionTimestamp"] = "2026-12-07T05:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "status": {"phase": phase, "podIP": "10.1.0.7", "startTime": "2026-12-07T04:00:00Z"},
    }


def pod_list(*pods: dict[str, object]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": list(pods)})


def proxied(name: str) -> str:
    return f"--raw /api/v1/namespaces/prod/pods/{name}:9001/proxy/-/bluum-key"


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on PATH with fake `kubectl` and `aws`; write `<tool>.json` (argv substring -> reply) to program them."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("kubectl", "aws"):
        program = folder / tool
        program.write_text(FAKE.replace("{python}", sys.executable).replace("{tool}", tool))
        program.chmod(0o755)
        (folder / f"{tool}.json").write_text("{}")
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return folder


def program(folder: Path, tool: str, replies: dict[str, dict[str, object]]) -> None:
    (folder / f"{tool}.json").write_text(json.dumps(replies))


def calls(folder: Path, tool: str) -> list[list[str]]:
    log = folder / f"{tool}.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def attest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


K8S = ("kubectl", "-n", "prod", "-l", "app=trading", "--port", "9001")


def test_kubectl_prints_the_fingerprint_when_every_running_pod_agrees(tools: Path) -> None:
    pods = pod_list(pod("a"), pod("b"), pod("c", terminating=True), pod("d", phase="Pending"), pod("e", "Failed"))
    program(
        tools,
        "kubectl",
        {
            "get pods": {"stdout": pods},
            proxied("a"): {"stdout": json.dumps({"fingerprint": NEW, "loaded_at": "2026-12-07T05:01:00Z"})},
            proxied("b"): {"stdout": NEW + "\n"},
            proxied("c"): {"stdout": NEW},
        },
    )
    done = attest(*K8S)
    assert (done.returncode, done.stdout) == (0, NEW + "\n"), done.stderr
    asked = [argv for argv in calls(tools, "kubectl") if "--raw" in argv]
    assert sorted(argv[2].split("/")[6] for argv in asked) == ["a:9001", "b:9001", "c:9001"], "Running pods only"
    assert calls(tools, "kubectl")[0] == ["get", "pods", "-n", "prod", "-l", "app=trading", "-o", "json"]


def test_kubectl_a_terminating_pod_on_the_old_key_means_no_answer_exit_4(tools: Path) -> None:
    program(
        tools,
        "kubectl",
        {
            "get pods": {"stdout": pod_list(pod("new-1"), pod("old-1", terminating=True))},
            proxied("new-1"): {"stdout": NEW},
            proxied("old-1"): {"stdout": OLD},
        },
    )
    done = attest(*K8S)
    assert (done.returncode, done.stdout) == (4, "")
    assert f"pod/old-1: {OLD}" in done.stderr
    assert f"pod/new-1: {NEW}" in done.stderr


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ({"exit": 1, "stderr": 'Error from server (ServiceUnavailable): the server is currently unable"\n'}, "down"),
        ({"stdout": NEW.upper()}, "malformed"),
        ({"stdout": f"{NEW} {NEW}"}, "two fingerprints"),
    ],
)
def test_kubectl_a_pod_without_a_fingerprint_exits_3(tools: Path, reply: dict[str, object], why: str) -> None:
    program(
        tools,
        "kubectl",
        {"get pods": {"stdout": pod_list(pod("a"), pod("b"))}, proxied("a"): {"stdout": NEW}, proxied("b"): reply},
    )
    done = attest(*K8S)
    assert (done.returncode, done.stdout) == (3, ""), why
    assert "pod/b: no fingerprint" in done.stderr


def test_kubectl_no_running_pod_exits_2_and_a_failed_listing_exits_1(tools: Path) -> None:
    program(tools, "kubectl", {"get pods": {"stdout": pod_list(pod("a", phase="Pending"))}})
    assert attest(*K8S).returncode == 2
    program(tools, "kubectl", {"get pods": {"exit": 1, "stderr": "error: You must be logged in to the server\n"}})
    done = attest(*K8S)
    assert (done.returncode, done.stdout) == (1, "")
    assert "You must be logged in" in done.stderr


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def task_servers() -> Iterator[dict[str, str]]:
    """Three ECS 'tasks': the attestation app on 127.0.0.2-4, port 19001; set a task's key in the dict."""
    keys = {"127.0.0.2": "pk_new_key", "127.0.0.3": "pk_new_key", "127.0.0.4": "pk_new_key"}
    servers: list[WSGIServer] = []
    for address in keys:
        server = make_server(address, 19001, wsgi_app(partial(keys.__getitem__, address)), handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield keys
    for server in servers:
        server.shutdown()
        server.server_close()


def task(number: int, last: str, desired: str = "RUNNING") -> dict[str, object]:
    """A task as `aws ecs describe-tasks` describes it (awsvpc: an ElasticNetworkInterface attachment)."""
    details = [
        {"name": "subnetId", "value": "subnet-0abc"},
        {"name": "networkInterfaceId", "value": f"eni-0{number}"},
        {"name": "macAddress", "value": "0a:1b:2c:3d:4e:5f"},
        {"name": "privateDnsName", "value": f"ip-127-0-0-{number}.ec2.internal"},
        {"name": "privateIPv4Address", "value": f"127.0.0.{number}"},
    ]
    return {
        "taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/prod/{number:032x}",
        "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        "lastStatus": last,
        "desiredStatus": desired,
        "launchType": "FARGATE",
        "attachments": [
            {"id": f"att-{number}", "type": "ElasticNetworkInterface", "status": "ATTACHED", "details": details}
        ],
        "containers": [{"name": "trading", "lastStatus": last}],
    }


def program_ecs(tools: Path, tasks: list[dict[str, object]]) -> None:
    running = [t["taskArn"] for t in tasks if t["desiredStatus"] == "RUNNING"]
    stopped = [t["taskArn"] for t in tasks if t["desiredStatus"] == "STOPPED"]
    program(
        tools,
        "aws",
        {
            "--desired-status RUNNING": {"stdout": json.dumps({"taskArns": running})},
            "--desired-status STOPPED": {"stdout": json.dumps({"taskArns": stopped})},
            "describe-tasks": {"stdout": json.dumps({"tasks": tasks, "failures": []})},
        },
    )


ECS = ("ecs", "--cluster", "prod", "--service", "trading", "--port", "19001")


def test_ecs_asks_every_task_running_or_still_stopping(tools: Path, task_servers: dict[str, str]) -> None:
    tasks = [task(2, "RUNNING"), task(3, "STOPPING", "STOPPED"), task(4, "PROVISIONING"), task(5, "STOPPED", "STOPPED")]
    program_ecs(tools, tasks)
    done = attest(*ECS)
    assert (done.returncode, done.stdout) == (0, NEW + "\n"), done.stderr
    assert done.stderr.count("task/") == 2, "RUNNING and STOPPING asked; PROVISIONING and STOPPED not"
    listed = [argv for argv in calls(tools, "aws") if "list-tasks" in argv]
    assert [argv[argv.index("--desired-status") + 1] for argv in listed] == ["RUNNING", "STOPPED"]
    task_servers["127.0.0.3"] = "pk_old_key"  # the stopping task still holds the old key: not moved
    assert attest(*ECS).returncode == 4


def test_ecs_a_task_that_does_not_answer_exits_3(tools: Path, task_servers: dict[str, str]) -> None:
    program_ecs(tools, [task(2, "RUNNING"), task(9, "RUNNING")])  # nothing listens on 127.0.0.9
    done = attest(*ECS)
    assert (done.returncode, done.stdout) == (3, "")


def test_lambda_probe_answers_and_a_function_error_exits_3(tools: Path) -> None:
    meta = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    program(tools, "aws", {"lambda invoke": {"stdout": json.dumps(meta), "write": json.dumps({"fingerprint": NEW})}})
    done = attest("lambda", "--function-name", "trading-orders")
    assert (done.returncode, done.stdout) == (0, NEW + "\n"), done.stderr
    argv = calls(tools, "aws")[-1]
    assert argv[argv.index("--payload") + 1].startswith("fileb://"), "raw bytes in aws CLI v1 and v2 alike"
    assert "--qualifier" not in argv
    assert attest("lambda", "--function-name", "trading-orders", "--qualifier", "live").returncode == 0
    argv = calls(tools, "aws")[-1]
    assert argv[argv.index("--qualifier") + 1] == "live", "the alias callers invoke"
    failed = {**meta, "FunctionError": "Unhandled"}
    error = json.dumps({"errorMessage": "boom", "errorType": "RuntimeError"})
    program(tools, "aws", {"lambda invoke": {"stdout": json.dumps(failed), "write": error}})
    assert attest("lambda", "--function-name", "trading-orders").returncode == 3


RECIPES = README.split("#### Consumer recipes")[1].split("\n### ")[0]


def recipe_configs() -> list[dict[str, Any]]:
    """Each TOML block of the README's recipes, completed into a whole rotator.toml: a credential for each store no
    credential names, and the keys every credential needs (the README leaves them out to stay short)."""
    configs = []
    for block in re.findall(r"```toml\n(.*?)```", RECIPES, re.DOTALL):
        data = tomllib.loads(block)
        credentials = data.setdefault("credentials", {})
        named = {credential["store"] for credential in credentials.values()}
        for store in data["stores"]:
            if store not in named:
                credentials[f"for-{store}"] = {"store": store}
        for credential in credentials.values():
            credential.setdefault("environment", "sandbox")
            credential.setdefault("issuer", "manual")
        configs.append(data)
    return configs


def test_every_recipe_block_is_a_valid_configuration() -> None:
    configs = recipe_configs()
    assert len(configs) == 2
    for data in configs:
        parse_config_data(data, base_dir=ROOT / "deploy", store_types=("env", "vault", "aws"))


def test_every_consumer_entry_in_the_recipe_table_is_valid() -> None:
    entries = re.findall(r"`(\{ name = .*? \})`", RECIPES)
    assert len(entries) >= 6
    stores: dict[str, dict[str, Any]] = {f"s{i}": {"type": "env", "path": f"app{i}.env"} for i in range(len(entries))}
    for index, entry in enumerate(entries):
        stores[f"s{index}"]["consumers"] = [tomllib.loads(f"x = {entry}")["x"]]
    credentials = {name: {"store": name, "environment": "sandbox", "issuer": "manual"} for name in stores}
    config = parse_config_data({"stores": stores, "credentials": credentials}, base_dir=ROOT, store_types=("env",))
    assert all(consumer.timeout <= timedelta(minutes=2) for name in stores for consumer in config.consumers_of(name))


def test_the_kubernetes_recipe_through_the_rotators_own_poll(tools: Path) -> None:
    """The README's consumer entry, run by the rotator as it runs consumers (its folder, its minimal environment):
    all pods on the new key is "new"; one pod left on the old key is "unreachable: exit 4", never "new"."""
    (data,) = [config for config in recipe_configs() if "k8s" in config["stores"]]
    config = parse_config_data(data, base_dir=ROOT / "deploy", store_types=("env",))
    (consumer,) = config.consumers_of("orders")
    assert consumer.command[:2] == ("python3", "attest-replicas.py"), "relative to rotator.toml's folder"
    program(
        tools,
        "kubectl",
        {
            "get pods": {"stdout": pod_list(pod("a"), pod("b"))},
            proxied("a"): {"stdout": NEW},
            proxied("b"): {"stdout": NEW},
        },
    )
    (found,) = poll_once([consumer], new_fingerprint=NEW, old_fingerprint=OLD, credential="orders")
    assert (found.outcome, found.reported) == ("new", NEW), found
    program(
        tools,
        "kubectl",
        {
            "get pods": {"stdout": pod_list(pod("a"), pod("b"))},
            proxied("a"): {"stdout": NEW},
            proxied("b"): {"stdout": OLD},
        },
    )
    (found,) = poll_once([consumer], new_fingerprint=NEW, old_fingerprint=OLD, credential="orders")
    assert (found.outcome, found.detail) == ("unreachable", "exit 4")
