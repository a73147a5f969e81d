"""The simulator accepts exactly the signatures ccxt's krakenfutures computes, and nothing else."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import ccxt
import pytest

from venues.kraken_sim import Credentials, point_ccxt_at, sign

SECRET = base64.b64encode(bytes(range(64))).decode()
CREDS = Credentials("key-1", SECRET)


def signed_by_ccxt(path: str, params: dict, secret: str = SECRET) -> tuple[dict, str, str]:
    client = point_ccxt_at(ccxt.krakenfutures({"apiKey": "key-1", "secret": secret}), "http://x")
    request = client.sign(path, ["private"], "POST", params)
    url = urlsplit(request["url"])
    post_data = url.query or (request["body"] or "")
    return request["headers"], post_data, url.path


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("sendorder", {"symbol": "PF_XBTUSD", "side": "buy", "size": "0.01", "orderType": "mkt"}),
        ("openpositions", {}),
        ("batchorder", {"batchOrder": [{"order": "cancel", "cliOrdId": "a b/c"}]}),
    ],
)
def test_ccxt_signatures_verify(path, params):
    headers, post_data, url_path = signed_by_ccxt(path, params)
    assert CREDS.verify(headers["APIKey"], headers["Authent"], post_data, url_path, "")


def test_a_wrong_secret_a_wrong_key_or_a_changed_parameter_do_not_verify():
    other = base64.b64encode(b"another secret").decode()
    headers, post_data, url_path = signed_by_ccxt("sendorder", {"size": "1"}, other)
    assert not CREDS.verify(headers["APIKey"], headers["Authent"], post_data, url_path, "")
    headers, post_data, url_path = signed_by_ccxt("sendorder", {"size": "1"})
    assert not CREDS.verify("key-2", headers["Authent"], post_data, url_path, "")
    assert not CREDS.verify(headers["APIKey"], headers["Authent"], "size=2", url_path, "")
    assert not CREDS.verify(headers["APIKey"], None, post_data, url_path, "")


def test_the_signed_path_drops_the_derivatives_prefix():
    assert sign(SECRET, "a=1", "/api/v3/fills") == sign(SECRET, "a=1", "/api/v3/fills", "")
    headers, post_data, url_path = signed_by_ccxt("fills", {"lastFillTime": "x"})
    assert url_path == "/derivatives/api/v3/fills"
    assert headers["Authent"] == sign(SECRET, post_data, "/api/v3/fills")


def test_a_secret_that_is_not_base64_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="base64"):
        Credentials("key", "not base64!")
