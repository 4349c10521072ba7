"""The export signing key and the signed checkpoints it makes.

An export's checkpoint states the size and Merkle root of the audit trail (and, in an extension
line, the scope file's hash) and is signed with an Ed25519 key kept outside the database. Both
formats are C2SP standards, so tools from the transparency-log world can read them:

- a checkpoint is a tlog-checkpoint (https://c2sp.org/tlog-checkpoint) inside a signed note
  (https://c2sp.org/signed-note), signed with signature type 0x01 (Ed25519);
- the public key travels as a signed-note verifier key, ``<name>+<key id>+<base64 key>``.

The private key file is made as carefully as the audit key (`audit.keys`). Errors: problems
with the key file raise `AuditKeyError`; a malformed public key or an argument that cannot be
signed raises `InvalidInput`; a note that fails verification, for any reason, raises
`IntegrityFailure` naming what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from channelflow.exceptions import AuditKeyError, IntegrityFailure, InvalidInput

DEFAULT_SIGNING_KEY_FILE = "channelflow-signing.key"
DEFAULT_PUBLIC_KEY_FILE = "signing-key.pub"
MAX_SIGNATURES = 100  # signed-note: verifiers must accept at least 16
MAX_TREE_SIZE = 2**63 - 1

_HEADER = "channelflow-signing-key v1"
_AUDIT_KEY_HEADER = "channelflow-audit-key v1"
_ROTATION_HEADER = "channelflow-signing-key-rotation v1"
_ED25519 = b"\x01"  # the signed-note signature type of Ed25519
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_ROOT_SIZE = 32
_SEED_HEX = re.compile(r"[0-9a-fA-F]{64}")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")  # ASCII digits only; \d would take any script's


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key: verifies checkpoints, and names the key a checkpoint trusts."""

    raw: bytes
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise InvalidInput("an Ed25519 public key is 32 bytes")
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.raw))

    def __reduce__(self) -> tuple[type[PublicKey], tuple[bytes]]:
        return (PublicKey, (self.raw,))  # OpenSSL key objects cannot be pickled

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of the raw key in hex: what an inspector pins with ``--fingerprint``."""
        return hashlib.sha256(self.raw).hexdigest()

    def key_id(self, name: str) -> bytes:
        """The 4-byte signed-note key ID: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
        _check_name(name)
        return hashlib.sha256(name.encode() + b"\n" + _ED25519 + self.raw).digest()[:4]

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``message``; never raises."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_text(self, name: str) -> str:
        """The signed-note verifier key ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        return f"{name}+{self.key_id(name).hex()}+{_b64(_ED25519 + self.raw)}"

    @classmethod
    def from_text(cls, text: str) -> tuple[str, PublicKey]:
        """The key name and key of a verifier key (one line; one final newline is allowed)."""
        line = text.removesuffix("\n")
        name, _, rest = line.partition("+")
        key_id, _, encoded = rest.partition("+")
        if not _valid_name(name) or not _KEY_ID_HEX.fullmatch(key_id):
            raise InvalidInput("the public key is not of the form <name>+<key id>+<base64 key>")
        decoded = _b64decode(encoded)
        if decoded is None or len(decoded) != 33 or decoded[:1] != _ED25519:
            raise InvalidInput("the public key is not an Ed25519 signed-note verifier key")
        key = cls(decoded[1:])
        if key.key_id(name).hex() != key_id.lower():
            raise InvalidInput("the public key's id does not match its name and key")
        return name, key


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key, held as its 32-byte seed (RFC 8032)."""

    seed: bytes = field(repr=False)
    _private: Ed25519PrivateKey = field(init=False, repr=False, compare=False)
    _public: PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise InvalidInput("an Ed25519 private key seed is 32 bytes")
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        object.__setattr__(self, "_private", private)
        object.__setattr__(self, "_public", PublicKey(private.public_key().public_bytes_raw()))

    def __reduce__(self) -> tuple[type[SigningKey], tuple[bytes]]:
        return (SigningKey, (self.seed,))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(32))

    @property
    def public(self) -> PublicKey:
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)


def create_signing_key(path: Path) -> SigningKey:
    """Write a new random signing key readable only by its owner; never overwrites a file."""
    key = SigningKey.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AuditKeyError(
            f"the signing key file {path} cannot be created ({error.strerror})"
        ) from None
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AuditKeyError(f"the signing key file {path} already exists") from None
    except OSError as error:
        raise AuditKeyError(
            f"the signing key file {path} cannot be created ({error.strerror})"
        ) from None
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(f"{_HEADER}\nkey {key.seed.hex()}\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # a half-written key must not block the next attempt
        raise
    _fsync_directory(path.parent)
    return key


def load_signing_key(path: Path) -> SigningKey:
    try:
        words = path.read_text("ascii").split()
    except FileNotFoundError:
        raise AuditKeyError(
            f"the signing key file {path} does not exist; run `channelflow init` or point the "
            "configuration at the signing key that belongs to this database"
        ) from None
    except (OSError, UnicodeDecodeError):
        raise AuditKeyError(f"the signing key file {path} cannot be read") from None
    header = " ".join(words[:2])
    if header == _AUDIT_KEY_HEADER:
        raise AuditKeyError(f"the signing key file {path} holds the audit key, not a signing key")
    if len(words) != 4 or header != _HEADER or words[2] != "key":
        raise AuditKeyError(f"the signing key file {path} is not a channelflow signing key")
    if not _SEED_HEX.fullmatch(words[3]):
        raise AuditKeyError(f"the signing key file {path} is not a channelflow signing key")
    return SigningKey(bytes.fromhex(words[3]))


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint: the log's origin, its tree size and RFC 6962 root hash, and any
    extension lines (channelflow adds `scope_extension` of the export's scope file)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _valid_line(self.origin):
            raise InvalidInput("a checkpoint's origin must be one non-empty line of text")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInput("a checkpoint's tree size must be a whole number from 0 to 2**63-1")
        if len(self.root) != _ROOT_SIZE:
            raise InvalidInput("a checkpoint's root hash must be 32 bytes")
        if not all(_valid_line(line) for line in self.extensions):
            raise InvalidInput("a checkpoint's extension lines must be non-empty lines of text")

    def body(self) -> str:
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines)


def scope_extension(scope_file: bytes) -> str:
    """The extension line that commits a checkpoint to an export's scope file."""
    return f"scope sha256:{hashlib.sha256(scope_file).hexdigest()}"


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey, name: str) -> str:
    """The checkpoint as a signed note, signed by ``key`` under the key name ``name``."""
    return sign_note(checkpoint.body(), key, name)


def open_checkpoint(note: str | bytes, key: PublicKey, name: str) -> Checkpoint:
    """The checkpoint in ``note`` once it is verified with ``key`` under the key name ``name``."""
    what = "the checkpoint"
    parsed = _parse_note(note, what)
    lines = parsed.text.removesuffix("\n").split("\n")
    if len(lines) < 3:
        raise _malformed(what, "it has fewer than three lines before the signatures")
    origin, size, root = lines[:3]
    if not origin:
        raise _malformed(what, "line 1 (the origin) is empty")
    if not _TREE_SIZE.fullmatch(size):
        raise _malformed(
            what, "line 2 (the tree size) is not a decimal number without leading zeros"
        )
    if int(size) > MAX_TREE_SIZE:
        raise _malformed(what, "line 2 (the tree size) is larger than 2**63-1")
    root_hash = _b64decode(root)
    if root_hash is None or len(root_hash) != _ROOT_SIZE:
        raise _malformed(what, "line 3 (the root hash) is not the base64 of a 32-byte hash")
    for number, line in enumerate(lines[3:], start=4):
        if not line:
            raise _malformed(what, f"line {number} (an extension line) is empty")
    _check_signature(parsed, key, name, what)
    return Checkpoint(origin, int(size), root_hash, tuple(lines[3:]))


def rotation_statement(old: SigningKey, new: PublicKey, name: str) -> str:
    """A note signed by the old key saying that ``new`` replaces it under the key name ``name``."""
    if new == old.public:
        raise InvalidInput("a key rotation needs a new key")
    body = f"{_ROTATION_HEADER}\nreplaces {old.public.fingerprint}\nnew {new.to_text(name)}\n"
    return sign_note(body, old, name)


def verify_rotation(note: str | bytes, old: PublicKey, name: str) -> PublicKey:
    """The new key of a rotation statement, once verified with the old key under ``name``."""
    what = "the key rotation statement"
    parsed = _parse_note(note, what)
    lines = parsed.text.removesuffix("\n").split("\n")
    if len(lines) != 3:
        raise _malformed(what, "it does not have exactly three lines before the signatures")
    if lines[0] != _ROTATION_HEADER:
        raise _malformed(what, f"line 1 is not {_ROTATION_HEADER!r}")
    replaced = lines[1].removeprefix("replaces ")
    if replaced == lines[1]:
        raise _malformed(what, "line 2 does not name the key it replaces")
    new_text = lines[2].removeprefix("new ")
    try:
        new_name, new = PublicKey.from_text(new_text)
    except InvalidInput as error:
        raise _malformed(what, f"line 3 is not the new key: {error.message}") from None
    _check_signature(parsed, old, name, what)
    if replaced != old.fingerprint:
        raise IntegrityFailure(
            f"{what} replaces key {replaced[:16]}, not key {old.fingerprint[:16]}"
        )
    if new_name != name or new == old:
        raise IntegrityFailure(f"{what} does not name a new key for {name}")
    return new


def sign_note(text: str, key: SigningKey, name: str) -> str:
    """A signed note: ``text`` (lines each ending in a newline), a blank line, one signature."""
    _check_name(name)
    if not text.endswith("\n") or not _encodable(text) or _control_character(text) is not None:
        raise InvalidInput("a note's text must be lines of text, each ending in a newline")
    signature = key.sign(text.encode())
    return f"{text}\n{_SIGNATURE_PREFIX}{name} {_b64(key.public.key_id(name) + signature)}\n"


def open_note(note: str | bytes, key: PublicKey, name: str) -> str:
    """The text of a signed note, once verified with ``key`` under the key name ``name``."""
    parsed = _parse_note(note, "the note")
    _check_signature(parsed, key, name, "the note")
    return parsed.text


@dataclass(frozen=True)
class _Note:
    text: str
    signatures: tuple[tuple[str, bytes], ...]  # (key name, key id || signature)


def _parse_note(note: str | bytes, what: str) -> _Note:
    """Split a signed note into its text and signature lines, refusing any malformed note."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed(what, "it is not UTF-8 text") from None
    elif not _encodable(note):
        raise _malformed(what, "it is not UTF-8 text")
    position = _control_character(note)
    if position is not None:
        number = note.count("\n", 0, position) + 1
        raise _malformed(
            what, f"line {number} holds a control character (U+{ord(note[position]):04X})"
        )
    if not note.endswith("\n"):
        raise _malformed(what, "it does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise _malformed(what, "it has no blank line before the signatures")
    text, lines = note[: split + 1], note[split + 2 : -1]
    if not lines:
        raise _malformed(what, "it has no signature lines")
    first = text.count("\n") + 2
    signature_lines = lines.split("\n")
    if len(signature_lines) > MAX_SIGNATURES:
        raise _malformed(what, f"it has more than {MAX_SIGNATURES} signature lines")
    signatures = []
    for number, line in enumerate(signature_lines, start=first):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise _malformed(what, f"line {number} is not a signature line")
        key_name, space, encoded = line.removeprefix(_SIGNATURE_PREFIX).partition(" ")
        if not space or not _valid_name(key_name):
            raise _malformed(what, f"line {number} does not name a valid key")
        blob = _b64decode(encoded)
        if blob is None or len(blob) < 5:
            raise _malformed(what, f"line {number} does not hold a base64 key id and signature")
        signatures.append((key_name, blob))
    return _Note(text, tuple(signatures))


def _check_signature(note: _Note, key: PublicKey, name: str, what: str) -> None:
    """Every signature by this key (name and key id) must verify, and there must be one.

    Signatures by other keys are ignored, as the signed-note spec requires.
    """
    key_id = key.key_id(name)
    message = note.text.encode()
    found = False
    for key_name, blob in note.signatures:
        if key_name == name and blob[:4] == key_id:
            if not key.verify(message, blob[4:]):
                raise IntegrityFailure(
                    f"{what}'s signature does not verify with key {key.fingerprint[:16]}"
                )
            found = True
    if not found:
        raise IntegrityFailure(f"{what} is not signed by key {key.fingerprint[:16]} as {name}")


def _malformed(what: str, detail: str) -> IntegrityFailure:
    return IntegrityFailure(f"{what} is malformed: {detail}")


def _check_name(name: str) -> None:
    if not _valid_name(name):
        raise InvalidInput(f"{name!r} is not a valid key name (no spaces, no '+', not empty)")


def _valid_name(name: str) -> bool:
    """signed-note: non-empty, no Unicode spaces and no plus; and, as all note text, valid
    UTF-8 without control characters."""
    return (
        bool(name)
        and "+" not in name
        and not any(character.isspace() for character in name)
        and _control_character(name) is None
        and _encodable(name)
    )


def _valid_line(line: str) -> bool:
    """One non-empty line of note text."""
    return bool(line) and "\n" not in line and _control_character(line) is None and _encodable(line)


def _control_character(text: str) -> int | None:
    """Where ``text`` holds a control character other than newline (U+0000 to U+001F)."""
    found = _CONTROL.search(text)
    return None if found is None else found.start()


def _encodable(text: str) -> bool:
    """False for strings holding lone surrogates, which have no UTF-8 encoding."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Standard padded base64 (RFC 4648 section 4) in its one canonical spelling, or None."""
    if not text.isascii():
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII string
        return None
    return data if _b64(data) == text else None


def _fsync_directory(directory: Path) -> None:
    """Make the new file's directory entry durable too (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
