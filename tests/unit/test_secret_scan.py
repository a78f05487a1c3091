"""The clear-secret scan of `drplan validate`: what it finds, what it leaves, and that it
reads long text in one pass (no pattern retries a long run from each of its positions:
a 25 KB description took 43 s before, a 5 MB one never ended; bench/validate_text.py
times the real command)."""

from __future__ import annotations

import pytest

from drplan.plan.loader import clear_secret

FOUND = {
    "postgres://user:hunter22@db/x": "a URL with a password",
    "DB_PASSWORD=hunter22": "a password assigned in clear",
    "redis-cli -h cache -a s3cretpass ping": "a password option",
    "curl -fsS -u admin:s3cret http://x/": "a password option",
    "mysql -uroot -ps3cret -e 'select 1'": "a password option",
    "app --password s3cret": "a password option",
    "-----BEGIN RSA PRIVATE KEY-----": "a private key",
    "AKIAABCDEFGHIJKLMNOP": "an AWS access key",
    "ghp_abcdefghijklmnop": "an API token",
}
LEFT = [
    "DB_PASSWORD=$X",
    "PASSWORD=",
    "redis-cli -a $PASS ping",
    "ls -a /srv/files",
    "curl -u admin:$P http://x",
    "mysql -uroot -p",
    "tar -pxf backup.tar",
    'app --password "$X"',
    "http://example.org/path",
    "://u:p@x",
    "a plain description with token counts and secrets of the trade",
]


@pytest.mark.parametrize(("value", "kind"), FOUND.items())
def test_secrets_in_clear_are_found(value, kind):
    assert clear_secret(value) == kind
    assert clear_secret(f"some text before\n{value}\nand after") == kind


@pytest.mark.parametrize("value", LEFT)
def test_references_and_ordinary_text_are_left(value):
    assert clear_secret(value) is None


@pytest.mark.parametrize(
    "text",
    [
        "a" * 300_000,
        "a://" * 75_000,
        "a=" * 150_000,
        "token" * 60_000,
        "redis-cli " * 30_000,
        "://a:" * 60_000,
        "password" + "x" * 300_000 + "=1",
    ],
)
def test_long_pathological_text_is_read_in_one_pass(text):
    """Each of these made a backtracking pattern quadratic; here they must simply end
    (pytest-timeout is the guard; the times are in bench/)."""
    clear_secret(text)
