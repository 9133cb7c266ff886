"""Authentication maths for ``mysql_native_password`` and ``caching_sha2_password``.

Pure functions, no I/O: the connection loop decides which packets to send, this module only computes and
checks scrambles. The server knows each user's cleartext password (from the config), so it can verify
the caching_sha2 fast-path scramble directly and never needs a server-side cache of password hashes;
``PERFORM_FULL_AUTH`` is only needed when the client did not send a scramble we can check (e.g. after a
plugin switch it declined), and then the password arrives either in clear over TLS or RSA-encrypted with
the key from ``RsaKeyPair``.

Comparisons use ``hmac.compare_digest`` so a wrong guess takes as long as a nearly right one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "FAST_AUTH_SUCCESS",
    "PERFORM_FULL_AUTH",
    "REQUEST_PUBLIC_KEY",
    "RsaKeyPair",
    "decrypt_password",
    "new_salt",
    "parse_cleartext_password",
    "public_key_pem",
    "scramble_caching_sha2",
    "scramble_native",
    "verify_caching_sha2_fast",
    "verify_native",
    "verify_native_hash",
]

NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"

# caching_sha2_password status bytes (sent inside an AuthMoreData packet, or by the client).
REQUEST_PUBLIC_KEY = b"\x02"
FAST_AUTH_SUCCESS = b"\x03"
PERFORM_FULL_AUTH = b"\x04"

SALT_LENGTH = 20


def new_salt() -> bytes:
    """A fresh 20-byte nonce. Bytes are 1..127 and never '$' (as MySQL's own): no NUL, since some clients
    treat the salt as a C string, and 7-bit so every client copies it unchanged."""
    out = bytearray(secrets.token_bytes(SALT_LENGTH))
    for i, b in enumerate(out):
        b &= 0x7F
        if b in (0, 0x24):
            b += 1
        out[i] = b
    return bytes(out)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _clean_response(response: bytes) -> bytes:
    """Some clients NUL-terminate the scramble; the terminator carries no secret."""
    if response.endswith(b"\x00") and len(response) in (1, 21, 33):
        return response[:-1]
    return response


# --------------------------------------------------------------------------------- mysql_native_password


def scramble_native(password: str, salt: bytes) -> bytes:
    """Client side: SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw))); empty for an empty password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode("utf-8")).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return _xor(stage1, hashlib.sha1(salt[:SALT_LENGTH] + stage2).digest())


def verify_native(password: str, salt: bytes, response: bytes) -> bool:
    """Server side check of a native-password scramble against the cleartext password."""
    response = _clean_response(response)
    if not password:
        return response == b""
    return hmac.compare_digest(scramble_native(password, salt), response)


def verify_native_hash(stage2: bytes, salt: bytes, response: bytes) -> bool:
    """Server side check against a stored SHA1(SHA1(pw)) (the ``*HEX`` hash in mysql.user), for configs
    that keep hashes instead of passwords."""
    response = _clean_response(response)
    if len(response) != 20 or len(stage2) != 20:
        return False
    stage1 = _xor(response, hashlib.sha1(salt[:SALT_LENGTH] + stage2).digest())
    return hmac.compare_digest(hashlib.sha1(stage1).digest(), stage2)


# --------------------------------------------------------------------------------- caching_sha2_password


def scramble_caching_sha2(password: str, salt: bytes) -> bytes:
    """Client side: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + salt); empty for an empty password."""
    if not password:
        return b""
    p1 = hashlib.sha256(password.encode("utf-8")).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + salt[:SALT_LENGTH]).digest())


def verify_caching_sha2_fast(password: str, salt: bytes, response: bytes) -> bool:
    """Server side check of the caching_sha2 fast-path scramble against the cleartext password."""
    response = _clean_response(response)
    if not password:
        return response == b""
    return hmac.compare_digest(scramble_caching_sha2(password, salt), response)


def parse_cleartext_password(data: bytes) -> str:
    """Password the client sent in clear (caching_sha2 full auth over TLS): NUL-terminated UTF-8."""
    if data.endswith(b"\x00"):
        data = data[:-1]
    return data.decode("utf-8", "replace")


class RsaKeyPair:
    """RSA key for caching_sha2 full authentication over an unencrypted connection.

    The client asks for the public key (``REQUEST_PUBLIC_KEY``), encrypts ``password + NUL`` XOR-ed with
    the salt using RSA-OAEP (SHA-1), and we decrypt. Generating a 2048-bit key takes tens of milliseconds,
    so the process-wide key (``default()``) is made on first use, not at import; call it from a worker
    thread (or at start-up) if the event loop must not stall.
    """

    _default: RsaKeyPair | None = None
    _lock = threading.Lock()

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self._key = private_key if private_key is not None else rsa.generate_private_key(65537, 2048)
        self._pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def default(cls) -> RsaKeyPair:
        """The process-wide key pair, generated once on first use."""
        if cls._default is None:
            with cls._lock:
                if cls._default is None:
                    cls._default = cls()
        return cls._default

    @classmethod
    def from_pem(cls, private_pem: bytes, password: bytes | None = None) -> RsaKeyPair:
        """Use a configured key file instead of a generated key."""
        key = serialization.load_pem_private_key(private_pem, password)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("caching_sha2_password needs an RSA private key")
        return cls(key)

    def public_key_pem(self) -> bytes:
        """PEM (SubjectPublicKeyInfo) public key, the form clients expect in AuthMoreData."""
        return self._pem

    def decrypt_password(self, ciphertext: bytes, salt: bytes) -> str:
        """Recover the password from the client's RSA-encrypted, salt-XOR-ed reply.

        Raises ValueError if the ciphertext does not decrypt (treat as access denied).
        """
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        try:
            plain = self._key.decrypt(ciphertext, oaep)
        except ValueError as exc:
            raise ValueError("cannot decrypt the client's password") from exc
        if not salt:
            raise ValueError("empty salt")
        salt = salt[:SALT_LENGTH]
        mask = (salt * (len(plain) // len(salt) + 1))[: len(plain)]
        password = _xor(plain, mask) if plain else b""
        if password.endswith(b"\x00"):
            password = password[:-1]
        return password.decode("utf-8", "replace")


def public_key_pem() -> bytes:
    """Public key of the process-wide ``RsaKeyPair``."""
    return RsaKeyPair.default().public_key_pem()


def decrypt_password(ciphertext: bytes, salt: bytes) -> str:
    """Decrypt with the process-wide ``RsaKeyPair`` (see ``RsaKeyPair.decrypt_password``)."""
    return RsaKeyPair.default().decrypt_password(ciphertext, salt)
