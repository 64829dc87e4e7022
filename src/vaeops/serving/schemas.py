"""Request and response bodies of the JSON API (pydantic): what /docs shows and FastAPI validates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field


def whole_number(value: Any) -> Any:
    """JSON Schema's integer: 3.0 is the integer 3 (true, "3" and 3.5 stay refused by the strict int after it)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = Annotated[int, BeforeValidator(whole_number)]
IMAGES_DOC = "one image (H, W) or (H*W,), or a batch (N, H, W) or (N, H*W); numbers in [0, 1]"


class EncodeRequest(BaseModel):
    """Images to encode into the posterior parameters (mu, logvar)."""

    images: list[Any] = Field(description=IMAGES_DOC, examples=[[[0.0, 0.5], [1.0, 0.25]]])


class ReconstructRequest(BaseModel):
    """Images to reconstruct: from z = mu, from one draw z ~ q(z|x), or as the average of several draws."""

    images: list[Any] = Field(description=IMAGES_DOC)
    mode: Literal["mean", "sample", "predictive"] = Field(
        "mean",
        description="mean: decode z = mu; sample: decode one draw z ~ q(z|x); predictive: the average decoded image "
        "of `samples` draws (the posterior predictive mean)",
    )
    samples: Whole = Field(1, strict=True, description="draws per image averaged by mode=predictive (1 otherwise)")
    seed: Whole | None = Field(None, strict=True, description="seed of the draws; null = fresh randomness")


class DecodeRequest(BaseModel):
    """Latents to decode into images."""

    z: list[Any] = Field(description="one latent (L,) or a batch (N, L)")


class GenerateRequest(BaseModel):
    """How many images to draw from the prior z ~ N(0, I), and the seed."""

    n: Whole = Field(1, strict=True, description="number of images to draw from the prior")
    seed: Whole | None = Field(None, strict=True, description="seed of z ~ N(0, I); null = fresh randomness")


class EncodeResponse(BaseModel):
    """Posterior mean and log-variance of each image."""

    model_version: str
    mu: list[Any]
    logvar: list[Any]


class ImagesResponse(BaseModel):
    """Decoded images in the layout of the request."""

    model_version: str
    shape: list[int]
    images: list[Any] = Field(
        description="pixel probabilities (Bernoulli) or means (Gaussian), in the request's layout"
    )


class ErrorResponse(BaseModel):
    """Why a request was refused."""

    detail: str


class NumpyJSONResponse(Response):
    """JSON via orjson, which writes float32 arrays directly in their shortest exact form (about 20x faster than
    json.dumps on a Python list of floats, and half the bytes)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """The body: orjson with numpy arrays serialised natively."""
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
