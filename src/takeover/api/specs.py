"""An instance's spec as the API takes it (checked: command or image, paths, env) and shows it."""

from __future__ import annotations

import posixpath
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator

from takeover.api.fields import Request
from takeover.domain.images import parse_image
from takeover.domain.models import (
    DEFAULT_MOUNT_PATH,
    InstanceSpec,
)


class SpecIn(Request):
    command: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list,
        max_length=256,
        description="argv of the process; with an image, optional (empty: the image's own command)",
    )
    env: dict[
        Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
        Annotated[str, Field(max_length=32_768)],
    ] = Field(default_factory=dict, max_length=256)
    workspace: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None = None
    image: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="an OCI image to run as a container, e.g. docker.io/pytorch/pytorch:latest"
    )
    mount_path: Annotated[str, Field(max_length=1024)] = Field(
        DEFAULT_MOUNT_PATH, description="where the container sees its workspace (an absolute path)"
    )

    @field_validator("image")
    @classmethod
    def _image_is_a_reference(cls, image: str | None) -> str | None:
        if image is not None:
            parse_image(image)  # its ValueError names what is wrong
        return image

    @field_validator("mount_path")
    @classmethod
    def _mount_path_is_absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"mount_path {path!r} is not an absolute path (e.g. /workspace)")
        normal = posixpath.normpath(path)
        if normal in ("/", "//"):
            raise ValueError(f"mount_path {path!r} would hide the container's whole filesystem")
        return normal

    @model_validator(mode="after")
    def _runs_something(self) -> SpecIn:
        if self.image is None:
            if not self.command:
                raise ValueError("give a command (the process to run) or an image (a container)")
            program = self.command[0]
            if "/" in program and not program.startswith("/"):
                raise ValueError(
                    f"the program {program!r} is a relative path, which the agent would look up in the "
                    "instance's workspace on the node; give an absolute path (e.g. $PWD/"
                    + program.removeprefix("./")
                    + ") or a program name found on the node's PATH"
                )
        return self

    def to_spec(self) -> InstanceSpec:
        return InstanceSpec(
            tuple(self.command),
            dict(self.env),
            self.workspace,
            image=self.image,
            mount_path=self.mount_path,
        )


class SpecOut(BaseModel):
    command: list[str]
    env: dict[str, str]
    workspace: str | None
    image: str | None = None
    image_digest: str | None = Field(None, description="the image every runner runs, pinned by the first")
    mount_path: str = DEFAULT_MOUNT_PATH

    @classmethod
    def of(cls, spec: InstanceSpec) -> SpecOut:
        return cls(
            command=list(spec.command),
            env=spec.env,
            workspace=spec.workspace,
            image=spec.image,
            image_digest=spec.image_digest,
            mount_path=spec.mount_path,
        )

    def to_spec(self) -> InstanceSpec:
        return InstanceSpec(
            tuple(self.command),
            dict(self.env),
            self.workspace,
            self.image,
            self.image_digest,
            self.mount_path,
        )
