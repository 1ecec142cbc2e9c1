"""Who may post webhooks: a shared token in the URL, or a Standard Webhooks signature.

zapw can only be given a URL, so its shared secret travels as `?token=`; a signing proxy
(or a future bridge) can sign instead, with `webhook-id`, `webhook-timestamp` and
`webhook-signature` over the raw body, timestamps allowed 5 minutes off.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from zapa_bridge.errors import ZapaError

SIGNATURE_HEADER = "webhook-signature"


class WebhookUnauthorized(ZapaError):
    """A webhook request without valid credentials; the text says which check failed."""


class WebhookAuthenticator:
    def __init__(self, *, token: str | None, secret: str | None,
                 allow_unauthenticated: bool = False) -> None:
        self._token = token.encode() if token else None
        self._signer = Webhook(secret) if secret else None
        self.allow_unauthenticated = allow_unauthenticated and not (token or secret)

    def decides_by_token(self, token: str | None) -> bool:
        """Whether `verify` will settle on the URL token alone: the body is then not needed,
        and need not be read before a wrong token is refused."""
        return token is not None and self._token is not None

    def verify(self, *, token: str | None, headers: Mapping[str, str], body: bytes) -> str:
        """Returns how the request proved itself (`token`, `signature` or `open`)."""
        if token is not None and self._token is not None:
            if hmac.compare_digest(token.encode(), self._token):
                return "token"
            raise WebhookUnauthorized("invalid token")
        if self._signer is not None and headers.get(SIGNATURE_HEADER):
            try:
                self._signer.verify(body, dict(headers.items()), json_parse=False)
            except WebhookVerificationError as exc:
                raise WebhookUnauthorized(f"invalid signature: {exc}") from None
            except (ValueError, binascii.Error):
                raise WebhookUnauthorized("invalid signature: malformed header") from None
            return "signature"
        if self.allow_unauthenticated:
            return "open"
        raise WebhookUnauthorized("missing credentials: add ?token= to the URL or sign the "
                                  "request with Standard Webhooks headers")
