"""Bearer-key authentication: which project a request acts for.

Public `/v1` (and Nebius's `/v0`) routes take API keys; `/internal` routes take a registered worker's key
(and, to register, the worker token), so a public key never reaches the worker API and a worker's
credentials never reach user data through `/v1`.

With no API keys configured the server is open to whoever reaches it, so it answers only requests
that name it by a loopback name or one of the configured public names (`GXFT_PUBLIC_HOSTS`): a web
page that rebinds its own domain name to 127.0.0.1 still sends its own name in `Host`, and is refused.
"""

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from server.config import DEFAULT_PROJECT
from server.errors import APIError, error_response
from storage.workers import WorkerRecord

PUBLIC_PATHS = ("/healthz", "/openapi.json")
REGISTER_PATH = "/internal/workers/register"
# Checkpoint permissions span projects: an admin key's, and nothing else is (as at OpenAI).
ADMIN_PATH_PREFIX = "/v1/fine_tuning/checkpoints/"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _host(scope: Scope) -> str | None:
    """The name in the Host header, without its port."""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            return host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return None


def is_loopback_name(host: str) -> bool:
    if host in ("localhost", "[::1]") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthMiddleware:
    def __init__(self, app: ASGIApp, api_keys: dict[str, str], worker_token: str, public_hosts: tuple[str, ...] = (),
                 admin_keys: tuple[str, ...] = ()):
        self.app = app
        self.api_keys = api_keys
        self.admin_keys = admin_keys
        self.worker_token = worker_token
        self.public_hosts = public_hosts

    def check_host(self, scope: Scope) -> None:
        host = _host(scope)
        if host is None or is_loopback_name(host) or host in self.public_hosts:
            return
        raise APIError(
            403, f"This server has no API keys, so it answers only requests that name it by a loopback name, not "
            f"{host[:100]!r}. Name it in GXFT_PUBLIC_HOSTS to serve it by that name, or set GXFT_API_KEYS.",
            type="permission_error", code="host_not_allowed",
        )

    def project_for(self, token: str | None) -> str:
        if token is None:
            raise APIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        if not self.api_keys:
            return DEFAULT_PROJECT
        for key, project in self.api_keys.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                return project
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")

    def is_admin(self, token: str | None) -> bool:
        return token is not None and any(hmac.compare_digest(key.encode(), token.encode()) for key in self.admin_keys)

    def check_admin_scope(self, path: str, token: str | None, admin: bool) -> None:
        """An admin key manages checkpoint permissions, and only that; where keys are set, only it does."""
        if path.startswith(ADMIN_PATH_PREFIX) and not admin and self.api_keys:
            self.project_for(token)  # no key, or a wrong one: a 401 first
            raise APIError(403, "Checkpoint permissions are managed with an admin key (GXFT_ADMIN_KEYS), not a "
                           "project's API key.", type="permission_error", code="admin_key_required")
        if admin and not path.startswith(ADMIN_PATH_PREFIX):
            raise APIError(403, "An admin key manages checkpoint permissions only; call this with a project's API "
                           "key.", type="permission_error", code="project_key_required")

    def check_worker_token(self, token: str | None) -> None:
        if token is None or not hmac.compare_digest(self.worker_token.encode(), token.encode()):
            raise APIError(401, "Registering a worker needs the worker token.", code="invalid_worker_token")

    @staticmethod
    def worker_for(scope: Scope, key: str | None) -> WorkerRecord:
        """The registered worker whose key this is (the roster lives with the app's services)."""
        worker = scope["app"].state.services.workers.identify(key) if key else None
        if worker is None:
            raise APIError(401, "The internal API needs a registered worker's key; a worker registers with the "
                           "worker token when it starts.", code="invalid_worker_token")
        return worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (path in PUBLIC_PATHS and self.api_keys):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        try:
            if path == REGISTER_PATH:
                self.check_worker_token(token)
            elif path.startswith("/internal/"):
                scope.setdefault("state", {})["worker"] = self.worker_for(scope, token)
            elif not self.api_keys:
                self.check_host(scope)
            if path.startswith(("/v1/", "/v0/")):
                admin = self.is_admin(token)
                self.check_admin_scope(path, token, admin)
                if not admin:
                    scope.setdefault("state", {})["project"] = self.project_for(token)
        except APIError as exc:
            await error_response(exc.status, exc.detail)(scope, receive, send)
            return
        await self.app(scope, receive, send)
