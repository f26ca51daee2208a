"""The counter workload as a container image, built offline from Debian's busybox-static.

The same contract as examples/counter.py, in a shell: ``GET /`` adds one and answers
``{"count": n, "epoch": e}`` once the new count is synced to ``count`` in the workspace,
``GET /count`` reads it. It is busybox's httpd serving ``www/`` of $TAKEOVER_WORKSPACE (the
mounted workspace) on $PORT, ``/`` being its one CGI script. Built with ``podman import`` (or ``docker import``) of a root filesystem
made here, so the demo, the tests and the benches need no registry.

``RENTABLE_IMAGE`` is the same with this host's ``python3`` (its standard library and the
shared libraries it loads, no pip, no takeover): what a machine rented for the counter boots,
where the onstart fetches the agent from the control plane and runs ``/app/serve`` beside it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

COUNTER_IMAGE = "localhost/takeover-counter:1"
RENTABLE_IMAGE = "localhost/takeover-counter-python:1"
BUSYBOX = Path("/bin/busybox")

_ADD = """#!/bin/sh
cd "$TAKEOVER_WORKSPACE" || exit 1
n=$(cat count 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > .count.tmp && sync .count.tmp && mv .count.tmp count && sync .
body="{\\"count\\": $n, \\"epoch\\": $TAKEOVER_EPOCH}"
echo "$body" > www/.count.tmp && mv www/.count.tmp www/count
printf 'Content-Type: application/json\\r\\n\\r\\n%s\\n' "$body"
"""

_SERVE = """#!/bin/sh
cd "$TAKEOVER_WORKSPACE" || exit 1
mkdir -p www/cgi-bin && cp /app/add www/cgi-bin/index.cgi
[ -f count ] || echo 0 > count
echo "{\\"count\\": $(cat count), \\"epoch\\": $TAKEOVER_EPOCH}" > www/count
echo "started $TAKEOVER_EPOCH" >> runs.log && sync runs.log
echo "counter on port $PORT, epoch $TAKEOVER_EPOCH, count $(cat count)"
exec httpd -f -p "${HOST:-127.0.0.1}:$PORT" -h "$TAKEOVER_WORKSPACE/www"
"""

_APPLETS = ("sh", "httpd", "cat", "cp", "mkdir", "mv", "sync", "sleep", "echo", "printf")


def rootfs_tar(busybox: Path = BUSYBOX, python: bool = False) -> bytes:
    """A root filesystem: a static busybox, its applets, the two scripts (and ``python``)."""
    if not busybox.exists():
        raise FileNotFoundError(f"{busybox} is missing: install Debian's busybox-static")
    data = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=data, mode="w") as tar:
        if python:
            add_python(tar)
        for folder in ("bin", "app", "tmp", "workspace", "root"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755, now
            tar.addfile(info)
        tar.add(busybox, "bin/busybox")
        for applet in _APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, "busybox", now
            tar.addfile(info)
        for name, text in (("app/add", _ADD), ("app/serve", _SERVE)):
            body = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), 0o755, now
            tar.addfile(info, io.BytesIO(body))
    return data.getvalue()


_LEFT_OUT = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"})


def add_python(tar: tarfile.TarFile) -> None:
    """This host's python3 (/usr/bin/python3 and /usr/lib/python3.X), with every shared library
    it and its extension modules load (as ldd lists them), at the same paths, and the rest of
    what Debian's python images carry for compiled wheels (glibc's libraries, libgcc_s,
    libstdc++)."""
    binary = Path("/usr/bin/python3").resolve()
    version = binary.name.removeprefix("python")
    stdlib = Path(f"/usr/lib/python{version}")
    if not binary.exists() or not stdlib.is_dir():
        raise FileNotFoundError(f"{binary} or {stdlib} is missing: install Debian's python3")
    files = [
        p
        for p in stdlib.rglob("*")
        if not _LEFT_OUT & set(p.relative_to(stdlib).parts) and "-packages" not in str(p)
    ]
    libraries: set[Path] = set()
    for loaded in [binary, *(p for p in files if p.suffix == ".so")]:
        found = subprocess.run(["ldd", str(loaded)], capture_output=True, text=True, check=False).stdout
        libraries |= {Path(w) for w in found.split() if w.startswith("/")}
    for name in (
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        "libgcc_s.so.1",
        "libstdc++.so.6",
    ):
        libraries |= set(Path("/lib").glob(f"*/{name}"))
    for path in sorted({binary, *libraries}):
        tar.add(path.resolve(), str(path).lstrip("/"))
    tar.add(stdlib, str(stdlib).lstrip("/"), recursive=False)
    for path in files:
        tar.add(path, str(path).lstrip("/"), recursive=False)
    link = tarfile.TarInfo("usr/bin/python3")
    link.type, link.linkname = tarfile.SYMTYPE, binary.name
    tar.addfile(link)


def import_counter_image(
    cli: Sequence[str], tag: str = COUNTER_IMAGE, env: dict[str, str] | None = None, python: bool = False
) -> str:
    """Import the image into the runtime ``cli`` names (e.g. ``["podman", "--root", ...]``);
    ``python``: with this host's python3, as RENTABLE_IMAGE."""
    if shutil.which(cli[0]) is None:
        raise FileNotFoundError(f"{cli[0]} is not installed")
    subprocess.run(
        [*cli, "import", "--change", 'CMD ["/app/serve"]', "-", tag],
        input=rootfs_tar(python=python),
        check=True,
        capture_output=True,
        env=env,
    )
    return tag
