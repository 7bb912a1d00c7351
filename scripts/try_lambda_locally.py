"""Try the rotation Lambda and its Terraform module on a laptop: `make try-lambda` (or run this file with the venv).

Everything runs on 127.0.0.1 and is gone when it ends; no AWS account, no Docker, no real Bluum:

  1. build the deployment package (scripts/build_lambda_zip.py, as `make lambda-zip`);
  2. start the Bluum simulator and open a sandbox account: a tenant key and an investor's first key;
  3. start moto (AWS on loopback) and tell it to run Lambdas without Docker. By default moto runs a Lambda in a
     Docker container; without a Docker engine (most laptops' CI, this project's machines) the provider's calls that
     touch the function then fail or wait, and `terraform apply` sat for 10+ minutes printing nothing;
  4. `terraform init` and `terraform apply` of a small root module that uses terraform/ with every AWS endpoint
     pointed at moto (`max_retries = 2`, so a moto error fails in seconds instead of being retried for minutes);
     terraform's own lines are shown as they come, with the seconds since the stage started;
  5. put the tenant key and today's key into the two secrets (what `aws secretsmanager put-secret-value` does);
  6. one rotation driven as Secrets Manager drives it: RotateSecret (AWSPENDING under a new token), then the
     function's handler with createSecret, setSecret, testSecret and finishSecret under that token (moto does not run
     the function's code, so this script calls the handler, in this process, with the function's configuration as
     Terraform deployed it; the one change: Bluum is the simulator, over http, which the module's https-only
     `base_url` cannot name);
  7. the tick (EventBridge's `{"rotator": "tick"}`): the grace window is 0 here, so the old key is revoked and
     proven dead; then the old key's and the new key's answers at Bluum are shown.

Each stage prints a line when it starts and when it ends (with its seconds); a long one prints while it runs.
Exit 0 when the rotation went through and the old key is rejected; 1 with the stage that failed otherwise.

With `--scheduler tick` the module is applied with `scheduler = "tick"` (no Secrets Manager rotation rule; the tick is
the scheduler) and `rotate_immediately = true`; stage 6 is then the tick starting the due rotation itself (and, the
grace being 0, revoking the old key), and stage 7 a person's rotation by the function's `{"rotator": "rotate"}` event.

Options: --keep (leave moto, the simulator and the work folder up until Enter, to look around with
`aws --endpoint-url`), --workdir PATH, --provider-mirror PATH (a filesystem mirror of hashicorp/aws; found by
itself in the usual places, else terraform downloads the provider from its registry), --scheduler
secrets_manager|tick (the module's `scheduler`, default secrets_manager).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

CHECKOUT = Path(__file__).resolve().parents[1]
MODULE = CHECKOUT / "terraform"
SECRET_NAME = "bluum/local/api-key"  # noqa: S105 - the managed secret's name, not a password
FUNCTION = "bluum-rotator-local"
REGION = "us-east-1"
STAGES = 7
MIRROR_GLOBS = ("/opt/*", "/opt/*/*", "/usr/share/terraform/plugins", "/usr/local/share/terraform/plugins")
PROVIDER_GLOB = "registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*"
SERVICES = ("cloudwatch", "cloudwatchevents", "cloudwatchlogs", "dynamodb", "iam", "kms", "lambda")
SERVICES_TOO = ("secretsmanager", "sns", "sts")
COMMAND_TIMEOUT = 600.0


class Failed(Exception):
    """A stage failed: the message says which and why."""


def say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def stage(number: int, what: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"[{number}/{STAGES}] {what} ...")
    try:
        yield
    except Failed:
        raise
    except Exception as exc:  # any failure of a stage is reported with the stage's name
        raise Failed(f"stage {number} ({what}) failed: {type(exc).__name__}: {exc}") from exc
    say(f"[{number}/{STAGES}] done in {time.monotonic() - started:.1f}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_streamed(command: list[str], *, cwd: Path, env: dict[str, str], label: str) -> str:
    """Run `command`, printing each line of its output as it comes (prefixed with the seconds so far), and a line
    every 10 s of silence, so a long step never looks hung; Failed with the tail of its output when it fails.
    Indented lines (terraform's plan, resource by resource) are kept for a failure's tail, not printed."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: list[str] = []
    last = [time.monotonic()]
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(2.0):
            if time.monotonic() - last[0] >= 10:
                say(f"      {label}: still running ({time.monotonic() - started:.0f}s)")
                last[0] = time.monotonic()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    assert process.stdout is not None
    try:
        for line in process.stdout:
            lines.append(line)
            if line.strip() and not line[0].isspace():
                say(f"      {time.monotonic() - started:5.1f}s  {line.rstrip()}")
                last[0] = time.monotonic()
        code = process.wait(timeout=COMMAND_TIMEOUT)
    finally:
        done.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        raise Failed(f"{label} exited {code}:\n{''.join(lines[-40:])}")
    return "".join(lines)


# ------------------------------------------------------------------------------------------------- the stages


def build_package(workdir: Path) -> Path:
    output = workdir / "bluum-rotator-lambda.zip"
    command = [sys.executable, str(CHECKOUT / "scripts" / "build_lambda_zip.py"), "--output", str(output)]
    run_streamed(command, cwd=CHECKOUT, env=dict(os.environ), label="build_lambda_zip.py")
    say(f"      {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return output


def start_moto(stack: ExitStack, workdir: Path) -> str:
    port = free_port()
    log = stack.enter_context((workdir / "moto.log").open("w"))
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    stack.callback(_stop, process)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise Failed(f"moto exited at start; see {workdir / 'moto.log'}")
        try:
            httpx.get(url + "/moto-api/", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise Failed("moto did not answer within 30 s") from None
            time.sleep(0.1)
    httpx.post(url + "/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=10).raise_for_status()
    say(f"      moto at {url} (pid {process.pid}, log {workdir / 'moto.log'}); Lambdas run without Docker")
    return url


def _stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def find_mirror(given: str | None) -> Path | None:
    if given:
        return Path(given)
    for pattern in MIRROR_GLOBS:
        for root in sorted(glob.glob(pattern)):
            hits = sorted(glob.glob(os.path.join(root, PROVIDER_GLOB)))
            if hits:
                path = Path(hits[0])
                while path.name != "registry.terraform.io":
                    path = path.parent
                return path.parent
    return None


def write_root_module(
    folder: Path, moto: str, package: Path, investor: str, scheduler: str = "secrets_manager"
) -> None:
    immediately = "true" if scheduler == "tick" else "false"  # with the tick: the key put in is due at the first tick
    endpoints = "\n".join(f'    {service} = "{moto}"' for service in (*SERVICES, *SERVICES_TOO))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.tf").write_text(
        f"""# Written by scripts/try_lambda_locally.py: terraform/ deployed into moto on 127.0.0.1.
terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws", version = ">= 5.0" }}
  }}
}}

provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  skip_region_validation      = true
  max_retries                 = 2 # a moto error fails in seconds, not after minutes of retries
  endpoints {{
{endpoints}
  }}
}}

module "bluum_rotator" {{
  source          = "{os.path.relpath(MODULE, folder)}"
  name            = "{FUNCTION}"
  lambda_zip_path = "{package}"
  secrets = {{
    "{SECRET_NAME}" = {{ environment = "sandbox", investor_id = "{investor}" }}
  }}
  grace                      = "0s"  # the tick revokes the old key at once (default 1h)
  create_kms_key             = false # moto takes 10+ s to make one; a real deployment keeps the default (true)
  ledger_deletion_protection = false
  recovery_window_days       = 0
  scheduler                  = "{scheduler}"
  rotate_immediately         = {immediately}
}}

output "function_name" {{
  value = module.bluum_rotator.function_name
}}
output "secret_arns" {{
  value = module.bluum_rotator.secret_arns
}}
output "manager_secret_arn" {{
  value = module.bluum_rotator.manager_secret_arn
}}
"""
    )


def terraform_env(folder: Path, mirror: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update({"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"})
    if mirror is not None:
        config = folder / "offline.tfrc"
        config.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/hashicorp/*"]\n'
            "  }\n"
            '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n'
            "}\n"
        )
        env["TF_CLI_CONFIG_FILE"] = str(config)
    return env


def apply(folder: Path, env: dict[str, str], terraform: str) -> dict[str, Any]:
    run_streamed([terraform, "init", "-input=false", "-no-color"], cwd=folder, env=env, label="terraform init")
    run_streamed(
        [terraform, "apply", "-auto-approve", "-input=false", "-no-color"],
        cwd=folder,
        env=env,
        label="terraform apply",
    )
    out = subprocess.run(
        [terraform, "output", "-json"], cwd=folder, env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return {name: value["value"] for name, value in json.loads(out).items()}


def aws_env(moto: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def secret_json(pair: Any, base_url: str, **extra: str) -> str:  # noqa: ANN401 - a KeyPair
    """A key pair as the secrets hold it; printed nowhere (it carries the secret)."""
    return json.dumps(
        {
            "api_key": pair.api_key,
            "api_secret": pair.api_secret.reveal(),
            "key_id": pair.key_id,
            "environment": "sandbox",
            "base_url": base_url,
            **extra,
        }
    )


def use_function_config(moto: str, sim_url: str, sim_host: str, out: IO[str]) -> None:
    """The function's environment as Terraform deployed it (read back from moto), in this process, pointed at the
    simulator: the handler then runs here as it would run there."""
    import boto3

    from rotator.aws_lambda import entry

    lam = boto3.client("lambda", endpoint_url=moto, region_name=REGION, **_keys())
    variables = dict(lam.get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"])
    managed = json.loads(variables["ROTATOR_SECRETS"])
    for entry_ in managed.values():
        entry_["base_url"] = sim_url
    shown = {k: v for k, v in variables.items() if k.startswith("ROTATOR_") and k != "ROTATOR_SECRETS"}
    out.write(f"      the function's configuration (from moto): {json.dumps(shown)}\n")
    variables.update({"ROTATOR_SECRETS": json.dumps(managed), "ROTATOR_ALLOWED_HOSTS": sim_host})
    out.write(f"      changed for the local try: base_url {sim_url}, ROTATOR_ALLOWED_HOSTS {sim_host}\n")
    os.environ.update(variables)
    os.environ.update(aws_env(moto))
    os.environ["TMPDIR"] = tempfile.gettempdir()
    entry._clients.clear()


def drive(moto: str, arn: str, out: IO[str]) -> None:
    """Stage 6: RotateSecret, then the handler's four steps under its token, as Secrets Manager calls them."""
    import boto3

    from rotator.aws_lambda import entry

    sm = boto3.client("secretsmanager", endpoint_url=moto, region_name=REGION, **_keys())
    token = str(uuid.uuid4())
    # `aws secretsmanager rotate-secret --secret-id ARN` names no function; moto (5.x) then forgets the configured one
    # and makes the new, empty version current, so the ARN Terraform configured is passed again.
    function = sm.describe_secret(SecretId=arn)["RotationLambdaARN"]
    sm.rotate_secret(SecretId=arn, ClientRequestToken=token, RotationLambdaARN=function)
    out.write(f"      RotateSecret: AWSPENDING version {token}\n")
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        started = time.monotonic()
        result = entry.handler({"SecretId": arn, "ClientRequestToken": token, "Step": step})
        out.write(f"      {step:<13} {result['outcome']:<16} ({time.monotonic() - started:.1f}s)\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave everything up until Enter")
    parser.add_argument("--workdir", help="where the package, terraform's files and moto's log go (default: temp)")
    parser.add_argument("--provider-mirror", help="a filesystem mirror of registry.terraform.io/hashicorp/aws")
    parser.add_argument(
        "--scheduler",
        choices=("secrets_manager", "tick"),
        default="secrets_manager",
        help="the module's scheduler: Secrets Manager's rotation rule (default) or the tick",
    )
    options = parser.parse_args(argv)
    terraform = shutil.which("terraform")
    if terraform is None:
        say("terraform is not on PATH: install terraform 1.5 or later (https://developer.hashicorp.com/terraform)")
        return 1
    started = time.monotonic()
    with ExitStack() as stack:
        if options.workdir:
            workdir = Path(options.workdir).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="try-lambda-")))
        try:
            return _run(stack, workdir, terraform, options, started)
        except Failed as failed:
            say(f"FAILED: {failed}")
            return 1


def _run(stack: ExitStack, workdir: Path, terraform: str, options: argparse.Namespace, started: float) -> int:
    from rotator.cli.demo import open_account
    from rotator.simulator import Simulator

    say(f"trying the rotation Lambda locally in {workdir} (moto + the Bluum simulator; nothing leaves this machine)")
    with stage(1, "building the Lambda package (scripts/build_lambda_zip.py; the first build downloads wheels)"):
        package = build_package(workdir)
    with stage(2, "starting the Bluum simulator; a sandbox tenant key and an investor's first key"):
        sim = stack.enter_context(Simulator())
        account = open_account(sim, "first")
        host = sim.base_url.split("//", 1)[1].split("/", 1)[0]
        say(f"      simulator at {sim.base_url}; investor {account.investor}; current key {account.first.info.id}")
    with stage(3, "starting moto (AWS on 127.0.0.1), Lambdas without Docker"):
        moto = start_moto(stack, workdir)
    with stage(4, "terraform init + apply of terraform/ against moto (about 20-60 s)"):
        mirror = find_mirror(options.provider_mirror)
        say(f"      provider: {'filesystem mirror ' + str(mirror) if mirror else 'from the Terraform registry'}")
        root = workdir / "root"
        write_root_module(root, moto, package, account.investor, options.scheduler)
        outputs = apply(root, terraform_env(root, mirror), terraform)
        arn = outputs["secret_arns"][SECRET_NAME]
        say(f"      function {outputs['function_name']}; managed secret {arn}")
    with stage(5, "putting the tenant key and today's key into the secrets (put-secret-value)"):
        import boto3

        sm = boto3.client("secretsmanager", endpoint_url=moto, region_name=REGION, **_keys())
        sm.put_secret_value(
            SecretId=outputs["manager_secret_arn"], SecretString=secret_json(account.tenant_pair, sim.base_url)
        )
        sm.put_secret_value(
            SecretId=arn, SecretString=secret_json(account.first.pair, sim.base_url, investor_id=account.investor)
        )
        say(f"      tenant key {account.tenant_pair.key_id}; current key {account.first.info.id}")
    if options.scheduler == "tick":
        _tick_schedules(
            sm, arn, account, sim.base_url, lambda: use_function_config(moto, sim.base_url, host, sys.stdout)
        )
    else:
        with stage(6, "a rotation as Secrets Manager drives it: RotateSecret, then the four steps"):
            use_function_config(moto, sim.base_url, host, sys.stdout)
            drive(moto, arn, sys.stdout)
        with stage(
            7, 'the tick (EventBridge\'s {"rotator": "tick"}): revoke the old key after the grace window (0 here)'
        ):
            from rotator.aws_lambda import entry

            tick = entry.handler({"rotator": "tick"})
            say(f"      tick: {tick['outcome']}")
            _check_rotated(sm, arn, account.first.pair, account.first.info.id, sim.base_url)
    say(f"all {STAGES} stages passed in {time.monotonic() - started:.0f}s")
    if options.keep:
        say(f"moto: {moto}; simulator: {sim.base_url}; folder: {workdir}. Press Enter to stop them.")
        input()
    return 0


def _tick_schedules(sm: Any, arn: str, account: Any, sim_url: str, configure: Callable[[], None]) -> None:  # noqa: ANN401
    """Stages 6 and 7 with scheduler = "tick": the tick starts the due rotation; then a person's rotate event."""
    from rotator.aws_lambda import entry

    with stage(6, 'the tick as the scheduler (EventBridge\'s {"rotator": "tick"}): the key is due, so it rotates'):
        rule = sm.describe_secret(SecretId=arn).get("RotationEnabled")
        say(f"      Secrets Manager rotation rule: {'none' if not rule else 'ENABLED (unexpected)'}")
        if rule:
            raise Failed("scheduler = tick left a Secrets Manager rotation rule on the secret")
        configure()
        (row,) = entry.handler({"rotator": "tick"})["secrets"]
        say(f"      tick: {row['outcome']}, phase {row['phase']}: {row['message']}")
        _check_rotated(sm, arn, account.first.pair, account.first.info.id, sim_url)
    with stage(7, 'a person\'s rotation: the {"rotator": "rotate"} invoke event (`aws lambda invoke`)'):
        before = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
        event = {"rotator": "rotate", "secret_id": arn, "reason": "trying the rotate event"}
        say(f"      {entry.handler(event)['message']}")
        entry.handler({"rotator": "tick"})  # the grace (0 here) has passed: the old key is revoked
        from rotator.core.model import Environment, KeyPair
        from rotator.core.secret import Secret

        pair = KeyPair(before["api_key"], Secret(before["api_secret"]), Environment.SANDBOX, before["key_id"])
        _check_rotated(sm, arn, pair, before["key_id"], sim_url)


def _check_rotated(sm: Any, arn: str, old_pair: Any, old_id: str, sim_url: str) -> None:  # noqa: ANN401 - boto3
    """The old key is rejected at Bluum and AWSCURRENT holds another key; Failed otherwise."""
    from rotator.bluum.client import BluumClient

    with BluumClient(sim_url) as client:
        old = client.check(old_pair).outcome.value
    new_id = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])["key_id"]
    say(f"      old key {old_id}: Bluum says {old}; AWSCURRENT now holds {new_id}")
    if old == "works" or new_id == old_id:
        raise Failed("the old key is still current or still accepted")


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


if __name__ == "__main__":
    sys.exit(main())
