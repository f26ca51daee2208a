"""Image references: what instances create accepts, and how a digest pins one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.images import ImageRef, parse_image, run_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [
        ("pytorch/pytorch:latest", ImageRef("pytorch/pytorch", "latest", None)),
        ("busybox", ImageRef("busybox", None, None)),
        ("localhost/takeover-counter:1", ImageRef("localhost/takeover-counter", "1", None)),
        ("127.0.0.1:5000/a/b_c--d:v1.2-rc", ImageRef("127.0.0.1:5000/a/b_c--d", "v1.2-rc", None)),
        (f"Registry.Example.com/ns/img@{DIGEST}", ImageRef("Registry.Example.com/ns/img", None, DIGEST)),
        (f"img:tag@{DIGEST}", ImageRef("img", "tag", DIGEST)),
        ("[::1]:5000/img", ImageRef("[::1]:5000/img", None, None)),
    ],
)
def test_well_formed_references_parse(reference: str, parsed: ImageRef) -> None:
    assert parse_image(reference) == parsed


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("", "empty"),
        (" busybox", "spaces"),
        ("pytorch/PyTorch", "lower case"),
        ("docker.io/Library/busybox", "lower case"),
        ("busybox@sha256:1234", "a digest is"),
        ("busybox:", "expected"),
        ("a b", "expected"),
        ("busybox:-tag", "expected"),
        ("/busybox", "expected"),
    ],
)
def test_malformed_references_are_refused_saying_why(reference: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_image(reference)


def test_a_name_longer_than_the_registry_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 255"):
        parse_image("a/" + "b" * 260)


def test_a_recorded_digest_replaces_the_tag() -> None:
    assert run_reference("docker.io/pytorch/pytorch:latest", DIGEST) == f"docker.io/pytorch/pytorch@{DIGEST}"
    assert run_reference("busybox:1", None) == "busybox:1"


@given(st.from_regex(r"\A[a-z0-9]{1,10}(/[a-z0-9]{1,10}){0,2}(:[A-Za-z0-9_]{1,10})?\Z"))
def test_pinning_keeps_the_repository(reference: str) -> None:
    ref = parse_image(reference)
    assert parse_image(ref.pinned(DIGEST)) == ImageRef(ref.name, None, DIGEST)
