"""Kraken Futures request signing (the `Authent` header), computed and verified.

Authent = base64(HMAC-SHA512(key=base64decode(secret),
                             msg=SHA-256(postData + nonce + endpointPath)))
endpointPath is the URL path without the `/derivatives` prefix
(`/api/v3/sendorder`); postData is the url-encoded parameters exactly as sent
(the query string, or the body for batchorder's `json=`); nonce is empty
unless the client sends a `Nonce` header (ccxt does not).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass


def decode_secret(secret: str) -> bytes:
    """The raw secret. Refuses a secret that is not base64, as Kraken issues them."""
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "api secret is not valid base64; Kraken secrets are base64 strings (make one with "
            "python -c 'import base64,os;print(base64.b64encode(os.urandom(64)).decode())')"
        ) from exc
    if not raw:
        raise ValueError("api secret is empty; pass the base64 secret the client signs with")
    return raw


def signing_path(url_path: str) -> str:
    """The endpoint path Kraken signs: the URL path without its `/derivatives` prefix."""
    return url_path.removeprefix("/derivatives")


def sign(secret: str, post_data: str, endpoint_path: str, nonce: str = "") -> str:
    """The Authent value a client computes for this request."""
    digest = hashlib.sha256((post_data + nonce + endpoint_path).encode()).digest()
    mac = hmac.new(decode_secret(secret), digest, hashlib.sha512).digest()
    return base64.b64encode(mac).decode()


@dataclass(frozen=True, slots=True)
class Credentials:
    """The one key pair the simulator accepts."""

    api_key: str
    api_secret: str

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api key is empty; pass the key the client sends in its APIKey header")
        decode_secret(self.api_secret)

    def verify(
        self, api_key: str | None, authent: str | None, post_data: str, url_path: str, nonce: str
    ) -> bool:
        """True when the key matches and Authent signs exactly this request."""
        if api_key is None or authent is None:
            return False
        expected = sign(self.api_secret, post_data, signing_path(url_path), nonce)
        key_ok = hmac.compare_digest(api_key.encode(), self.api_key.encode())
        return key_ok and hmac.compare_digest(authent.encode(), expected.encode())
