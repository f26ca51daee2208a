"""Container image references: which are well formed, and how one is pinned to a digest.

The grammar is the OCI distribution one (``[host[:port]/]path[:tag][@algo:hex]``), checked here
so that ``instances create`` refuses a typo at once instead of a node failing to pull it later.
An instance records the digest its first runner resolved; every later runner, on any node, runs
``repository@digest``, so a restore elsewhere runs the same bytes even if the tag moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
_DOMAIN = rf"(?:{_HOST}|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{DIGEST}))?$"
)
_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class ImageRef:
    name: str  # the repository, with its registry if one is named
    tag: str | None
    digest: str | None

    def pinned(self, digest: str) -> str:
        """The reference that names exactly ``digest`` (the tag no longer matters)."""
        return f"{self.name}@{digest}"


def parse_image(reference: str) -> ImageRef:
    """The parts of ``reference``; ValueError saying what is wrong with it otherwise."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise ValueError(f"{reference!r} is not an image reference {_why(reference)}")
    if len(match["name"]) > _MAX_NAME:
        raise ValueError(f"the image name in {reference!r} is longer than {_MAX_NAME} characters")
    return ImageRef(match["name"], match["tag"], match["digest"])


def _why(reference: str) -> str:
    if not reference or reference != reference.strip():
        return "(it is empty or has spaces around it)"
    first, _, rest = reference.split("@", maxsplit=1)[0].partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else reference
    if any(c.isupper() for c in path.split("@")[0].rsplit(":", 1)[0]):
        return "(repository names are lower case)"
    if "@" in reference and not re.search(rf"@{DIGEST}$", reference):
        return "(a digest is algorithm:hex, e.g. sha256: and 64 hex digits)"
    return "(expected [registry/]name[:tag][@sha256:digest], e.g. docker.io/pytorch/pytorch:latest)"


def run_reference(image: str, digest: str | None) -> str:
    """What a runner runs: the recorded digest when there is one, else the reference as given."""
    if digest is None:
        return image
    return parse_image(image).pinned(digest)
