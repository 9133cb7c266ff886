"""Password scrambles and the caching_sha2 RSA exchange, checked against PyMySQL's client side."""

from __future__ import annotations

import hashlib

import pymysql._auth
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from marmot.mysql import auth
from marmot.mysql.auth import (
    FAST_AUTH_SUCCESS,
    PERFORM_FULL_AUTH,
    REQUEST_PUBLIC_KEY,
    RsaKeyPair,
    new_salt,
    parse_cleartext_password,
    scramble_caching_sha2,
    scramble_native,
    verify_caching_sha2_fast,
    verify_native,
    verify_native_hash,
)

PASSWORDS = ["pw", "secret with spaces", "pässwörd", "x" * 64]


@pytest.fixture(scope="module")
def keypair() -> RsaKeyPair:
    return RsaKeyPair()


def test_status_bytes() -> None:
    assert (REQUEST_PUBLIC_KEY, FAST_AUTH_SUCCESS, PERFORM_FULL_AUTH) == (b"\x02", b"\x03", b"\x04")


def test_new_salt_is_printable_safe_and_fresh() -> None:
    salts = {new_salt() for _ in range(200)}
    assert len(salts) == 200
    for salt in salts:
        assert len(salt) == 20
        assert all(1 <= b <= 127 and b != 0x24 for b in salt)


@pytest.mark.parametrize("password", PASSWORDS)
def test_native_matches_pymysql(password: str) -> None:
    salt = new_salt()
    client = pymysql._auth.scramble_native_password(password.encode(), salt)
    assert scramble_native(password, salt) == client
    assert verify_native(password, salt, client)
    assert not verify_native(password + "!", salt, client)
    assert not verify_native(password, new_salt(), client)


def test_native_empty_password() -> None:
    salt = new_salt()
    assert scramble_native("", salt) == b""
    assert verify_native("", salt, b"")
    assert verify_native("", salt, b"\x00")  # some clients send just a NUL
    assert not verify_native("", salt, scramble_native("pw", salt))
    assert not verify_native("pw", salt, b"")


def test_native_tolerates_trailing_nul() -> None:
    salt = new_salt()
    assert verify_native("pw", salt, scramble_native("pw", salt) + b"\x00")


def test_native_against_stored_hash() -> None:
    salt = new_salt()
    stage2 = hashlib.sha1(hashlib.sha1(b"pw").digest()).digest()
    client = pymysql._auth.scramble_native_password(b"pw", salt)
    assert verify_native_hash(stage2, salt, client)
    assert not verify_native_hash(stage2, salt, scramble_native("other", salt))
    assert not verify_native_hash(stage2, salt, b"short")


@pytest.mark.parametrize("password", PASSWORDS)
def test_caching_sha2_matches_pymysql(password: str) -> None:
    salt = new_salt()
    client = pymysql._auth.scramble_caching_sha2(password.encode(), salt)
    assert scramble_caching_sha2(password, salt) == client
    assert verify_caching_sha2_fast(password, salt, client)
    assert not verify_caching_sha2_fast(password + "!", salt, client)


def test_caching_sha2_empty_password() -> None:
    salt = new_salt()
    assert scramble_caching_sha2("", salt) == b""
    assert verify_caching_sha2_fast("", salt, b"")
    assert not verify_caching_sha2_fast("pw", salt, b"")
    assert not verify_caching_sha2_fast("", salt, scramble_caching_sha2("pw", salt))


def test_cleartext_password() -> None:
    assert parse_cleartext_password("pässwörd".encode() + b"\x00") == "pässwörd"
    assert parse_cleartext_password(b"pw") == "pw"


def _client_encrypt(password: str, salt: bytes, public_pem: bytes) -> bytes:
    """What a MySQL client does for caching_sha2 full auth without TLS, written out with cryptography."""
    plain = bytearray(password.encode() + b"\x00")
    for i in range(len(plain)):
        plain[i] ^= salt[i % len(salt)]
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return key.encrypt(bytes(plain), oaep)


@pytest.mark.parametrize("password", [*PASSWORDS, ""])
def test_rsa_round_trip(keypair: RsaKeyPair, password: str) -> None:
    salt = new_salt()
    pem = keypair.public_key_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert keypair.decrypt_password(_client_encrypt(password, salt, pem), salt) == password


def test_rsa_round_trip_with_pymysql_client(keypair: RsaKeyPair) -> None:
    salt = new_salt()
    ciphertext = pymysql._auth.sha2_rsa_encrypt(
        b"longer than the twenty byte salt", salt, keypair.public_key_pem()
    )
    assert keypair.decrypt_password(ciphertext, salt) == "longer than the twenty byte salt"


def test_rsa_wrong_salt_or_garbage(keypair: RsaKeyPair) -> None:
    salt = new_salt()
    ciphertext = _client_encrypt("pw", salt, keypair.public_key_pem())
    assert keypair.decrypt_password(ciphertext, new_salt()) != "pw"
    with pytest.raises(ValueError):
        keypair.decrypt_password(b"garbage", salt)
    with pytest.raises(ValueError):
        keypair.decrypt_password(ciphertext, b"")


def test_rsa_from_pem(keypair: RsaKeyPair) -> None:
    key = rsa.generate_private_key(65537, 2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    loaded = RsaKeyPair.from_pem(pem)
    salt = new_salt()
    assert loaded.decrypt_password(_client_encrypt("pw", salt, loaded.public_key_pem()), salt) == "pw"


def test_process_wide_key_is_made_once() -> None:
    first = RsaKeyPair.default()
    assert RsaKeyPair.default() is first
    salt = new_salt()
    assert auth.decrypt_password(_client_encrypt("pw", salt, auth.public_key_pem()), salt) == "pw"
