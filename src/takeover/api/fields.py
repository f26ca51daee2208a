"""Field types and the request base every API body shares: unknown fields are refused by name."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from takeover.domain.images import parse_image

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


Region = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


LabelValue = str | int | float | bool


def _image_reference(value: str) -> str:
    parse_image(value)  # its ValueError names what is wrong
    return value


ImageName = Annotated[str, Field(max_length=500), AfterValidator(_image_reference)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Wherever an instance or volume id is taken, its short number is too (document 002's ids are integers).
Ref = UUID | Annotated[int, Field(ge=1, le=2**62)]


SnapshotId = Annotated[str, Field(max_length=200, pattern=r"^[0-9]{12}-[0-9]{8}T[0-9]{12}Z-[0-9a-f]+$")]
