"""The agent as a rented machine gets it: this control plane's own installed code, from here.

A machine rented from a marketplace boots the instance's image, which has no takeover and may
have no pip and no route to a package index. Its onstart script fetches this bundle with the
rental's join token: the installed files of every distribution the agent imports (takeover
itself, editable or not, and its dependencies), unpacked as they are on this machine. So the
agent there is exactly this control plane's version, and needs only a ``python3`` of the same
minor version and machine type (compiled dependencies such as pydantic-core are built for one).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import platform
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

import takeover

# What `takeover agent` imports, listed by a fresh interpreter (a module imported only when a
# feature is used is named here: NVML for GPUs; shipped when installed here).
_PROBE = """
import json, sys
import takeover.cli.app, takeover.agent.agent
mods = {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
print(json.dumps(sorted(mods | {"pynvml"})))
"""
_NOT_SHIPPED = frozenset({"setuptools", "pip", "wheel"})  # site hooks, not imports of the agent


@dataclass(frozen=True, slots=True)
class Bundle:
    data: bytes  # a gzipped tar: site/<the files of each distribution>, as under site-packages
    python: str  # "3.11": the minor version its compiled files are for
    machine: str  # "x86_64"
    sha256: str
    distributions: tuple[str, ...]


_lock = threading.Lock()


def agent_bundle(s3: bool = False) -> Bundle:
    """Built once per process (a few seconds), then served from memory. ``s3``: with boto3, for
    an agent whose snapshot store is s3:// (botocore alone is 15 MB gzipped)."""
    with _lock:
        return _build(s3)


def python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@functools.cache
def _build(s3: bool) -> Bundle:
    names = _closure(_imported_distributions() | ({"boto3"} if s3 else set()))
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz", compresslevel=6) as tar:
        for name in names:
            for source, target in _files(metadata.distribution(name)):
                tar.add(source, f"site/{target}", recursive=False)
        manifest = json.dumps({"python": python_tag(), "distributions": names}).encode()
        info = tarfile.TarInfo("site/takeover-bundle.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    body = data.getvalue()
    return Bundle(body, python_tag(), platform.machine(), hashlib.sha256(body).hexdigest(), tuple(names))


def _imported_distributions() -> set[str]:
    found = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    owners = metadata.packages_distributions()
    return {d for module in json.loads(found.stdout) for d in owners.get(module, ())} - _NOT_SHIPPED


def _closure(roots: set[str]) -> list[str]:
    """The distributions and every one they require (no extras), by normalized name; not what
    takeover requires (the control plane's database drivers and web server): what its agent
    imports is among the roots."""
    seen: dict[str, str] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional import that is not installed here (e.g. NVML)
        seen[key] = dist.metadata["Name"]
        for line in dist.requires if key != "takeover" and dist.requires else ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(seen.values())


def _files(dist: metadata.Distribution) -> list[tuple[Path, str]]:
    """(file here, path under site-packages) for the distribution's installed files, without
    bytecode (it would double the download to save about a second of compiling); takeover
    installed in editable mode (a development checkout) ships its source package instead of
    the import hook that points at the checkout."""
    root = Path(str(dist.locate_file("")))
    out = []
    for entry in dist.files or ():
        path = Path(str(dist.locate_file(entry)))
        if ".." in entry.parts or path.suffix == ".pth" or entry.name.startswith("__editable__"):
            continue  # scripts outside site-packages, site hooks
        if _wanted(path):
            out.append((path, str(path.relative_to(root))))
    if dist.metadata["Name"] == "takeover" and not any(t.startswith("takeover/") for _, t in out):
        package = Path(takeover.__file__).parent
        out.extend(
            (path, f"takeover/{path.relative_to(package)}")
            for path in sorted(package.rglob("*"))
            if _wanted(path)
        )
    return out


def _wanted(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts
