"""Signing as OpenAI signs its webhooks, after the Standard Webhooks scheme: an HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}` with the secret's bytes (base64 after `whsec_`), sent as
`webhook-signature: v1,<base64>`; several space-separated signatures while an old secret stays valid."""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def signed_headers(delivery_id: str, timestamp: int, body: str, signing_secrets: list[str]) -> dict[str, str]:
    signed = f"{delivery_id}.{timestamp}.{body}".encode()
    signatures = [
        "v1," + base64.b64encode(hmac.new(base64.b64decode(secret.removeprefix(SECRET_PREFIX)), signed,
                                          hashlib.sha256).digest()).decode()
        for secret in signing_secrets
    ]
    return {"webhook-id": delivery_id, "webhook-timestamp": str(timestamp), "webhook-signature": " ".join(signatures),
            "content-type": "application/json"}
