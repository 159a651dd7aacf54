"""A real OpenID Provider on loopback for the single sign-on tests: the npm package
`oidc-provider` (OpenID Certified) run by Node from tests/oidc_provider.mjs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey

SCRIPT = Path(__file__).resolve().parent / "oidc_provider.mjs"
PACKAGE = Path(__file__).resolve().parents[1] / "node_modules" / "oidc-provider"
CLIENT_ID = "moderation-test"
CLIENT_SECRET = "a-client-secret-for-the-tests-only"


def signing_key(kid: str) -> dict[str, Any]:
    """A new RSA private key as a JWK (the provider signs ID tokens with it)."""
    key = RSAKey.generate_key(2048, {"kid": kid, "alg": "RS256", "use": "sig"}, private=True)
    return dict(key.as_dict(private=True))


def require_provider() -> None:
    """Skip without Node or oidc-provider, except in CI, where their absence is a failure."""
    missing = shutil.which("node") is None or not PACKAGE.exists()
    if missing and not os.environ.get("CI"):
        pytest.skip("the single sign-on tests need node and oidc-provider (make install)")
    assert not missing, "CI must install node and oidc-provider (make install)"


class OpenIDProvider:
    def __init__(self, port: int, redirect_uri: str, accounts: dict[str, dict[str, Any]]):
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.redirect_uri = redirect_uri
        self.accounts = accounts
        self.keys = [signing_key("key-1")]
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": self.redirect_uri,
            "keys": self.keys,
            "accounts": self.accounts,
        }
        self.process = subprocess.Popen(
            ["node", str(SCRIPT), json.dumps(config)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=SCRIPT.parents[1],
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "ready", f"the OpenID provider did not start: {line!r}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def rotate_keys(self) -> None:
        """Restart signing with a new key; the old one is still published (a rotation)."""
        self.stop()
        self.keys = [signing_key(f"key-{len(self.keys) + 1}"), *self.keys]
        self.start()

    def control(self, **body: Any) -> None:
        request = urllib.request.Request(
            f"{self.issuer}/__test/mode",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
