"""The export signing key, C2SP signed notes and checkpoints, and key rotation statements."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channelflow.audit.keys import create_key
from channelflow.audit.signing import (
    MAX_SIGNATURES,
    Checkpoint,
    PublicKey,
    SigningKey,
    create_signing_key,
    load_signing_key,
    open_checkpoint,
    open_note,
    rotation_statement,
    scope_extension,
    sign_checkpoint,
    sign_note,
    verify_rotation,
)
from channelflow.exceptions import AuditKeyError, IntegrityFailure, InvalidInput

# The example key pair and note of golang.org/x/mod/sumdb/note (note_test.go), the reference
# implementation of C2SP signed-note. The private key is "PRIVATE+KEY+<name>+<id>+<base64(0x01
# || seed)>"; Ed25519 is deterministic, so signing the text must give exactly their note.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngo"
    "tpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)
GO_ENOCH_VERIFIER = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"

NAME = "audit.example/channelflow"
KEY = SigningKey(bytes(range(32)))
OTHER = SigningKey(bytes(range(32, 64)))
ROOT = hashlib.sha256(b"root").digest()
CHECKPOINT = Checkpoint(NAME, 1234, ROOT, (scope_extension(b'{"cases":[]}'),))


def go_key() -> SigningKey:
    encoded = GO_SIGNER.split("+", 4)[4]
    decoded = base64.b64decode(encoded)
    assert decoded[0] == 1
    return SigningKey(decoded[1:])


# ---- the private key file ----------------------------------------------------------------------


def test_a_created_key_loads_back_identically(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "channelflow-signing.key"
    key = create_signing_key(path)
    assert load_signing_key(path) == key
    assert load_signing_key(path).public == key.public
    assert path.read_text("ascii") == f"channelflow-signing-key v1\nkey {key.seed.hex()}\n"


def test_a_created_key_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "channelflow-signing.key"
    create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_are_random() -> None:
    assert SigningKey.generate() != SigningKey.generate()


def test_creating_a_key_never_overwrites_a_file(tmp_path: Path) -> None:
    path = tmp_path / "channelflow-signing.key"
    key = create_signing_key(path)
    with pytest.raises(AuditKeyError, match="already exists"):
        create_signing_key(path)
    assert load_signing_key(path) == key


def test_creating_a_key_never_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "link.key").symlink_to(target)
    with pytest.raises(AuditKeyError, match="already exists"):
        create_signing_key(tmp_path / "link.key")
    assert not target.exists()


def test_a_key_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(AuditKeyError, match=r"signing key file .* cannot be created"):
        create_signing_key(tmp_path / "file" / "channelflow-signing.key")


def test_a_missing_key_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match=r"does not exist; run `channelflow init`"):
        load_signing_key(tmp_path / "absent.key")


def test_an_unreadable_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="cannot be read"):
        load_signing_key(tmp_path)
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"channelflow-signing-key v1\nkey \xff\n")
    with pytest.raises(AuditKeyError, match="cannot be read"):
        load_signing_key(binary)


def test_the_audit_key_is_not_taken_for_the_signing_key(tmp_path: Path) -> None:
    create_key(tmp_path / "channelflow.key")
    with pytest.raises(AuditKeyError, match="holds the audit key, not a signing key"):
        load_signing_key(tmp_path / "channelflow.key")


@pytest.mark.parametrize(
    "content",
    [
        "",
        "channelflow-signing-key v1\n",
        "channelflow-signing-key v2\nkey " + "ab" * 32 + "\n",
        "channelflow-signing-key v1\nseed " + "ab" * 32 + "\n",
        "channelflow-signing-key v1\nkey " + "ab" * 31 + "\n",
        "channelflow-signing-key v1\nkey " + "ab" * 33 + "\n",
        "channelflow-signing-key v1\nkey " + "zz" * 32 + "\n",
        "channelflow-signing-key v1\nkey " + "ab" * 32 + " extra\n",
        GO_VERIFIER + "\n",
    ],
)
def test_a_malformed_key_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    with pytest.raises(AuditKeyError, match=r"bad\.key is not a channelflow signing key"):
        load_signing_key(path)


def test_the_secret_never_appears_in_a_repr() -> None:
    assert KEY.seed.hex() not in repr(KEY)
    assert repr(KEY.seed) not in repr(KEY)


def test_keys_can_be_pickled_for_worker_processes() -> None:
    key, public = pickle.loads(pickle.dumps((KEY, KEY.public)))  # noqa: S301 (our own bytes)
    assert (key, public) == (KEY, KEY.public)
    assert public.verify(b"m", key.sign(b"m"))


def test_key_material_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(InvalidInput):
        SigningKey(b"\0" * 31)
    with pytest.raises(InvalidInput):
        PublicKey(b"\0" * 33)


# ---- the public key ----------------------------------------------------------------------------


@given(message=st.binary(max_size=200))
def test_a_signature_verifies_with_the_key_and_nothing_else(message: bytes) -> None:
    signature = KEY.sign(message)
    assert len(signature) == 64
    assert KEY.public.verify(message, signature)
    assert not OTHER.public.verify(message, signature)
    assert not KEY.public.verify(message + b"!", signature)
    assert not KEY.public.verify(message, bytes([signature[0] ^ 1]) + signature[1:])


@given(message=st.binary(max_size=64), signature=st.binary(max_size=100))
def test_verify_never_raises_on_a_bad_signature(message: bytes, signature: bytes) -> None:
    assert KEY.public.verify(message, signature) is False


def test_the_fingerprint_is_the_sha256_of_the_raw_key() -> None:
    assert KEY.public.fingerprint == hashlib.sha256(KEY.public.raw).hexdigest()
    assert len(KEY.public.fingerprint) == 64
    assert len(KEY.public.raw) == 32


def test_the_key_id_is_computed_as_the_signed_note_spec_says() -> None:
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    expected = hashlib.sha256(NAME.encode() + b"\n\x01" + KEY.public.raw).digest()[:4]
    assert KEY.public.key_id(NAME) == expected
    assert KEY.public.key_id(NAME + "2") != expected


def test_the_reference_implementation_key_gives_the_same_id_and_verifier_key() -> None:
    public = go_key().public
    assert public.key_id("PeterNeumann") == bytes.fromhex("c74f20a3")
    assert public.to_text("PeterNeumann") == GO_VERIFIER
    assert PublicKey.from_text(GO_VERIFIER) == ("PeterNeumann", public)


def test_a_public_key_text_round_trips_with_or_without_its_newline() -> None:
    text = KEY.public.to_text(NAME)
    name, key_id, encoded = text.split("+", 2)
    assert (name, key_id) == (NAME, KEY.public.key_id(NAME).hex())
    assert base64.b64decode(encoded) == b"\x01" + KEY.public.raw
    assert PublicKey.from_text(text) == (NAME, KEY.public)
    assert PublicKey.from_text(text + "\n") == (NAME, KEY.public)


def test_every_mangling_of_a_public_key_is_refused() -> None:
    # As the reference implementation's test: every proper substring, every byte bumped.
    for start in range(len(GO_VERIFIER)):
        for end in range(start + 1, len(GO_VERIFIER) + 1):
            if (start, end) != (0, len(GO_VERIFIER)):
                with pytest.raises(InvalidInput):
                    PublicKey.from_text(GO_VERIFIER[start:end])
    for index in range(len(GO_VERIFIER)):
        bumped = GO_VERIFIER[:index] + chr(ord(GO_VERIFIER[index]) + 1) + GO_VERIFIER[index + 1 :]
        with pytest.raises(InvalidInput):
            PublicKey.from_text(bumped)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "not of the form"),
        (GO_VERIFIER + "\n\n", "not an Ed25519"),
        (GO_VERIFIER + "\r\n", "not an Ed25519"),
        (" " + GO_VERIFIER, "not of the form"),
        # another signature type (0x02)
        (GO_VERIFIER.replace("+ARpc", "+Ahpc"), "not an Ed25519"),
        (GO_VERIFIER.replace("+c74f20a3+", "+c74f20a3+BB"), "not an Ed25519"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "id does not"),
        (GO_VERIFIER + "==", "not an Ed25519"),
        (GO_VERIFIER.replace("Neumann", "Neumann "), "not of the form"),
    ],
)
def test_a_malformed_public_key_is_invalid_input(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        PublicKey.from_text(text)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\tb", "tab\x01", "\ud800"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid key name"):
        KEY.public.to_text(name)
    with pytest.raises(InvalidInput, match="not a valid key name"):
        sign_checkpoint(CHECKPOINT, KEY, name)


# ---- signed notes: the reference implementation's examples -------------------------------------


def test_signing_gives_the_reference_implementations_note_byte_for_byte() -> None:
    assert sign_note(GO_TEXT, go_key(), "PeterNeumann") == GO_TEXT + "\n" + GO_PETER_SIG


def test_the_reference_implementations_notes_open() -> None:
    _, peter = PublicKey.from_text(GO_VERIFIER)
    _, enoch = PublicKey.from_text(GO_ENOCH_VERIFIER)
    both = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    assert open_note(both, peter, "PeterNeumann") == GO_TEXT
    assert open_note(both, enoch, "EnochRoot") == GO_TEXT
    # Duplicated signatures, and a broken one from a key we do not know, are fine.
    noisy = GO_PETER_SIG * 2 + GO_ENOCH_SIG + GO_ENOCH_SIG[:60] + "ABCD" + GO_ENOCH_SIG[60:]
    assert open_note(GO_TEXT + "\n" + noisy, peter, "PeterNeumann") == GO_TEXT
    with pytest.raises(IntegrityFailure, match="signature does not verify"):
        open_note(GO_TEXT + "\n" + noisy, enoch, "EnochRoot")


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + GO_PETER_SIG,
        GO_TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
        "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + GO_PETER_SIG * (MAX_SIGNATURES + 1),
    ],
)
def test_the_reference_implementations_malformed_notes_are_refused(note: str) -> None:
    _, peter = PublicKey.from_text(GO_VERIFIER)
    with pytest.raises(IntegrityFailure, match="the note is malformed"):
        open_note(note, peter, "PeterNeumann")
    with pytest.raises(IntegrityFailure, match="the note is malformed"):
        open_note(note.encode(), peter, "PeterNeumann")


def test_a_note_that_is_not_utf8_is_refused() -> None:
    _, peter = PublicKey.from_text(GO_VERIFIER)
    note = (GO_TEXT + "\n" + GO_PETER_SIG).encode()
    with pytest.raises(IntegrityFailure, match="not UTF-8"):
        open_note(b"\xff" + note, peter, "PeterNeumann")
    with pytest.raises(IntegrityFailure, match="not UTF-8"):
        open_note("\udcff" + note.decode(), peter, "PeterNeumann")


# ---- checkpoints -------------------------------------------------------------------------------


def test_the_c2sp_example_checkpoint_body_is_reproduced() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    checkpoint = Checkpoint("example.com/behind-the-sofa", 20852163, root)
    assert checkpoint.body() == (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_a_signed_checkpoint_is_the_body_a_blank_line_and_one_signature_line() -> None:
    note = sign_checkpoint(CHECKPOINT, KEY, NAME)
    digest = hashlib.sha256(b'{"cases":[]}').hexdigest()
    body = f"{NAME}\n1234\n{base64.b64encode(ROOT).decode()}\nscope sha256:{digest}\n"
    assert CHECKPOINT.body() == body
    assert note.startswith(body + "\n\u2014 " + NAME + " ")
    assert note.endswith("\n")
    assert note.count("\n") == 6
    blob = base64.b64decode(note[len(body) + 1 :].split(" ")[2].strip(), validate=True)
    assert len(blob) == 4 + 64
    assert blob[:4] == KEY.public.key_id(NAME)
    assert KEY.public.verify(body.encode(), blob[4:])


ORIGINS = st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1)


@given(
    origin=ORIGINS,
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(ORIGINS, max_size=4).map(tuple),
)
def test_a_checkpoint_round_trips_with_its_extension_lines(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    checkpoint = Checkpoint(origin, size, root, extensions)
    note = sign_checkpoint(checkpoint, KEY, NAME)
    assert open_checkpoint(note, KEY.public, NAME) == checkpoint
    assert open_checkpoint(note.encode(), KEY.public, NAME) == checkpoint


def test_changing_any_bit_of_a_checkpoint_is_caught() -> None:
    note = sign_checkpoint(CHECKPOINT, KEY, NAME).encode()
    for index in range(len(note)):
        for bit in range(8):
            tampered = note[:index] + bytes([note[index] ^ (1 << bit)]) + note[index + 1 :]
            with pytest.raises(IntegrityFailure):
                open_checkpoint(tampered, KEY.public, NAME)


@given(data=st.data())
def test_cutting_or_inserting_text_anywhere_is_caught(data: st.DataObject) -> None:
    note = sign_checkpoint(CHECKPOINT, KEY, NAME)
    start = data.draw(st.integers(0, len(note)))
    end = data.draw(st.integers(start, len(note)))
    insert = data.draw(st.text(max_size=5))
    tampered = note[:start] + insert + note[end:]
    if tampered != note:
        with pytest.raises(IntegrityFailure):
            open_checkpoint(tampered, KEY.public, NAME)


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    note = sign_checkpoint(CHECKPOINT, OTHER, NAME)
    with pytest.raises(IntegrityFailure, match=f"not signed by key {KEY.public.fingerprint[:16]}"):
        open_checkpoint(note, KEY.public, NAME)


def test_a_checkpoint_signed_under_another_name_is_refused() -> None:
    note = sign_checkpoint(CHECKPOINT, KEY, "someone.else/log")
    with pytest.raises(IntegrityFailure, match="not signed by key"):
        open_checkpoint(note, KEY.public, NAME)


def test_a_forged_signature_claiming_the_keys_name_and_id_is_refused() -> None:
    body = CHECKPOINT.body()
    forged = base64.b64encode(KEY.public.key_id(NAME) + OTHER.sign(body.encode())).decode()
    note = f"{body}\n— {NAME} {forged}\n"
    message = f"the checkpoint's signature does not verify with key {KEY.public.fingerprint[:16]}"
    with pytest.raises(IntegrityFailure, match=message):
        open_checkpoint(note, KEY.public, NAME)


def test_a_checkpoint_without_a_signature_is_refused() -> None:
    with pytest.raises(IntegrityFailure, match="it has no signature lines"):
        open_checkpoint(CHECKPOINT.body() + "\n", KEY.public, NAME)
    with pytest.raises(IntegrityFailure, match="no blank line"):
        open_checkpoint(CHECKPOINT.body(), KEY.public, NAME)


def test_another_keys_signature_beside_the_keys_own_is_ignored() -> None:
    ours = sign_checkpoint(CHECKPOINT, KEY, NAME)
    theirs = sign_checkpoint(CHECKPOINT, OTHER, "witness.example/w1")
    our_line = ours.split("\n\n")[1]
    their_line = theirs.split("\n\n")[1]
    for lines in (our_line + their_line, their_line + our_line, our_line * 2):
        note = CHECKPOINT.body() + "\n" + lines
        assert open_checkpoint(note, KEY.public, NAME) == CHECKPOINT
    # Only another key's signature: refused, whichever name it claims.
    with pytest.raises(IntegrityFailure, match="not signed by key"):
        open_checkpoint(theirs, KEY.public, NAME)


def test_a_bad_signature_from_the_key_beside_a_good_one_rejects_the_note() -> None:
    # signed-note: if a signature from a known key fails, clients SHOULD reject the whole note.
    good = sign_checkpoint(CHECKPOINT, KEY, NAME).split("\n\n")[1]
    bad = base64.b64encode(KEY.public.key_id(NAME) + b"\0" * 64).decode()
    note = CHECKPOINT.body() + "\n" + good + f"— {NAME} {bad}\n"
    with pytest.raises(IntegrityFailure, match="signature does not verify"):
        open_checkpoint(note, KEY.public, NAME)


def test_extension_lines_are_signed() -> None:
    note = sign_checkpoint(CHECKPOINT, KEY, NAME)
    scope = CHECKPOINT.extensions[0]
    for tampered in (
        note.replace(scope, scope_extension(b"{}")),
        note.replace(scope + "\n", ""),
        note.replace(scope + "\n", scope + "\nextra\n"),
    ):
        with pytest.raises(IntegrityFailure, match=r"signature does not verify|not signed"):
            open_checkpoint(tampered, KEY.public, NAME)


def test_scope_extension_commits_to_the_scope_files_bytes() -> None:
    assert scope_extension(b"abc") == "scope sha256:" + hashlib.sha256(b"abc").hexdigest()


ROOT_B64 = base64.b64encode(ROOT).decode()
WIDE_PADDING = ROOT_B64.replace("=", "\uff1d")
URL_SAFE = base64.urlsafe_b64encode(b"\xff" * 32).decode()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (f"{NAME}\n1\n", "it has fewer than three lines"),
        (f"{NAME}\n01\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n-1\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n+1\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n 1\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n1e3\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n1_000\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n\u0661\u0662\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal"),
        (f"{NAME}\n\uff11\n{ROOT_B64}\n", "line 2 .the tree size. is not a decimal number"),
        (f"{NAME}\n{2**63}\n{ROOT_B64}\n", "line 2 .the tree size. is larger than"),
        (f"{NAME}\n1\n{ROOT_B64[:-1]}\n", "line 3 .the root hash."),
        (f"{NAME}\n1\n{ROOT_B64.rstrip('=')}\n", "line 3 .the root hash."),
        (f"{NAME}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", "line 3 .the root hash."),
        (f"{NAME}\n1\n{base64.b64encode(ROOT + b'x').decode()}\n", "line 3 .the root hash."),
        (f"{NAME}\n1\n{ROOT_B64[:-2]}F=\n", "line 3 .the root hash."),  # non-canonical bits
        (f"{NAME}\n1\n{WIDE_PADDING}\n", "line 3 .the root hash."),
        (f"{NAME}\n1\n{URL_SAFE}\n", "line 3 .the root"),
        (f"\n1\n{ROOT_B64}\n", "line 1 .the origin. is empty"),
        (f"{NAME}\n1\n{ROOT_B64}\n\nscope x\n", "line 4 .an extension line. is empty"),
    ],
)
def test_a_malformed_checkpoint_names_the_line(body: str, problem: str) -> None:
    note = sign_note(body, KEY, NAME)  # a valid signature: only the format is wrong
    with pytest.raises(IntegrityFailure, match=f"the checkpoint is malformed: {problem}"):
        open_checkpoint(note, KEY.public, NAME)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda note: note.replace("\n", "\r\n"), r"line 1 holds a control character \(U\+000D\)"),
        (lambda note: note.replace("1234", "12\t34"), r"line 2 holds a control character"),
        (lambda note: note + "garbage", "it does not end with a newline"),
        (lambda note: note + "garbage\n", "line 7 is not a signature line"),
        (lambda note: note + "\n", "it has no signature lines"),
        (lambda note: note.replace("\u2014", "-"), "line 6 is not a signature line"),
        (lambda note: note.replace("\u2014 ", "\u2014"), "line 6 is not a signature line"),
        (lambda note: note.replace(f" {NAME} ", f" {NAME}\u00a0"), "line 6 does not name a"),
        (lambda note: note.replace(f" {NAME} ", f" {NAME}  "), "line 6 does not hold a base64"),
        (lambda note: note[:-2] + "\n", "line 6 does not hold a base64"),
        (lambda note: note[:-1] + " \n", "line 6 does not hold a base64"),
    ],
)
def test_a_malformed_note_names_the_line(change: Callable[[str], str], problem: str) -> None:
    note = change(sign_checkpoint(CHECKPOINT, KEY, NAME))
    with pytest.raises(IntegrityFailure, match=f"the checkpoint is malformed: {problem}"):
        open_checkpoint(note, KEY.public, NAME)


def test_a_short_signature_line_is_malformed() -> None:
    note = CHECKPOINT.body() + "\n— " + NAME + " " + base64.b64encode(b"1234").decode() + "\n"
    with pytest.raises(IntegrityFailure, match="line 6 does not hold a base64 key id"):
        open_checkpoint(note, KEY.public, NAME)


def test_sixteen_signatures_are_accepted_and_too_many_refused() -> None:
    ours = sign_checkpoint(CHECKPOINT, KEY, NAME).split("\n\n")[1]
    witnesses = "".join(
        sign_checkpoint(CHECKPOINT, OTHER, f"witness.example/{n}").split("\n\n")[1]
        for n in range(MAX_SIGNATURES - 1)
    )
    assert open_checkpoint(CHECKPOINT.body() + "\n" + witnesses + ours, KEY.public, NAME)
    with pytest.raises(IntegrityFailure, match="more than 100 signature lines"):
        open_checkpoint(CHECKPOINT.body() + "\n" + witnesses + ours * 2, KEY.public, NAME)


@pytest.mark.parametrize(
    "arguments",
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("a\tb", 1, ROOT, ()),
        ("\ud800", 1, ROOT, ()),
        (NAME, -1, ROOT, ()),
        (NAME, 2**63, ROOT, ()),
        (NAME, True, ROOT, ()),
        (NAME, 1, ROOT[:31], ()),
        (NAME, 1, ROOT, ("",)),
        (NAME, 1, ROOT, ("two\nlines",)),
    ],
)
def test_a_checkpoint_that_cannot_be_written_is_refused(
    arguments: tuple[str, int, bytes, tuple[str, ...]],
) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(*arguments)


def test_note_text_that_cannot_be_signed_is_refused() -> None:
    for text in ("no newline", "a\rb\n", "\udcff\n"):
        with pytest.raises(InvalidInput):
            sign_note(text, KEY, NAME)


# ---- key rotation ------------------------------------------------------------------------------


def test_a_rotation_statement_names_the_new_key_and_round_trips() -> None:
    statement = rotation_statement(KEY, OTHER.public, NAME)
    body = statement.split("\n\n")[0] + "\n"
    assert body == (
        "channelflow-signing-key-rotation v1\n"
        f"replaces {KEY.public.fingerprint}\n"
        f"new {OTHER.public.to_text(NAME)}\n"
    )
    assert verify_rotation(statement, KEY.public, NAME) == OTHER.public
    assert verify_rotation(statement.encode(), KEY.public, NAME) == OTHER.public


def test_a_rotation_must_change_the_key() -> None:
    with pytest.raises(InvalidInput, match="needs a new key"):
        rotation_statement(KEY, KEY.public, NAME)


def test_a_rotation_forged_by_the_new_key_is_refused() -> None:
    body = (
        "channelflow-signing-key-rotation v1\n"
        f"replaces {KEY.public.fingerprint}\n"
        f"new {OTHER.public.to_text(NAME)}\n"
    )
    with pytest.raises(IntegrityFailure, match="not signed by key"):
        verify_rotation(sign_note(body, OTHER, NAME), KEY.public, NAME)
    # Even claiming the old key's id: the signature itself does not verify.
    note = sign_note(body, OTHER, NAME)
    blob = base64.b64decode(note.split(" ")[-1])
    claimed = base64.b64encode(KEY.public.key_id(NAME) + blob[4:]).decode()
    with pytest.raises(IntegrityFailure, match="signature does not verify"):
        verify_rotation(note.rsplit(" ", 1)[0] + " " + claimed + "\n", KEY.public, NAME)


def test_a_tampered_rotation_is_refused() -> None:
    statement = rotation_statement(KEY, OTHER.public, NAME)
    third = SigningKey(bytes(range(64, 96))).public
    swapped = statement.replace(OTHER.public.to_text(NAME), third.to_text(NAME))
    with pytest.raises(IntegrityFailure, match="signature does not verify"):
        verify_rotation(swapped, KEY.public, NAME)
    with pytest.raises(IntegrityFailure, match="not signed by key"):
        verify_rotation(statement, OTHER.public, NAME)
    with pytest.raises(IntegrityFailure, match="not signed by key"):
        verify_rotation(statement, KEY.public, "someone.else/log")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("channelflow-signing-key-rotation v2\nreplaces x\nnew y\n", "line 1 is not"),
        (
            "channelflow-signing-key-rotation v1\nreplaces x\n",
            "it does not have exactly three",
        ),
        ("channelflow-signing-key-rotation v1\nretires x\nnew y\n", "line 2 does not name"),
        ("channelflow-signing-key-rotation v1\nreplaces x\nnew y\n", "line 3 is not the new key"),
    ],
)
def test_a_malformed_rotation_names_the_line(body: str, problem: str) -> None:
    with pytest.raises(IntegrityFailure, match=f"rotation statement is malformed: {problem}"):
        verify_rotation(sign_note(body, KEY, NAME), KEY.public, NAME)


def test_a_rotation_signed_by_the_old_key_must_say_it_replaces_that_key() -> None:
    body = (
        "channelflow-signing-key-rotation v1\n"
        f"replaces {OTHER.public.fingerprint}\n"
        f"new {OTHER.public.to_text(NAME)}\n"
    )
    with pytest.raises(IntegrityFailure, match=f"replaces key {OTHER.public.fingerprint[:16]}"):
        verify_rotation(sign_note(body, KEY, NAME), KEY.public, NAME)
    renamed = (
        "channelflow-signing-key-rotation v1\n"
        f"replaces {KEY.public.fingerprint}\n"
        f"new {OTHER.public.to_text('another.example/log')}\n"
    )
    with pytest.raises(IntegrityFailure, match="does not name a new key for"):
        verify_rotation(sign_note(renamed, KEY, NAME), KEY.public, NAME)


def test_a_rotation_is_not_a_checkpoint_and_a_checkpoint_is_not_a_rotation() -> None:
    statement = rotation_statement(KEY, OTHER.public, NAME)
    with pytest.raises(IntegrityFailure, match="checkpoint is malformed"):
        open_checkpoint(statement, KEY.public, NAME)
    with pytest.raises(IntegrityFailure, match="rotation statement is malformed"):
        verify_rotation(sign_checkpoint(CHECKPOINT, KEY, NAME), KEY.public, NAME)


def test_the_key_file_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        create_signing_key(tmp_path / "k.key")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
