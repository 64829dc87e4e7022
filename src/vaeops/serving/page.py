"""The page at `/` and the endpoints it calls: gallery, per-image explanation, model card, the report as HTML.

Everything the browser loads comes from this package (`static/`) or from the server itself: no CDN, no build step.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path
from typing import Annotated, Any

import markdown
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from vaeops.serving.dataplane import DataPlane, ReportUnavailable
from vaeops.serving.schemas import Whole

STATIC = Path(__file__).parent / "static"


REPORT_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}img{max-width:100%}"
)


class ExplainRequest(BaseModel):
    """One image and how many draws to use for the numbers behind "why sample z?"."""

    image: list[Any] = Field(description="one image (H, W) or (H*W,), numbers in [0, 1]")
    samples: Whole | None = Field(
        None,
        strict=True,
        description="draws z ~ q(z|x) for the sampled decodes and E_q[log p(x|z)] (null: 16, or "
        "serve.max_samples if lower)",
    )
    seed: Whole = Field(0, strict=True, description="seed of every draw: the same request gives the same numbers")
    ks: list[Annotated[Whole, Field(strict=True)]] = Field(
        [1, 10, 100, 1000], description="sample counts K of the ELBO_K and L_K estimates"
    )
    repeats: Whole = Field(10, strict=True, description="independent repeats per K, for the spread of each estimate")


def report_html(markdown_bytes: bytes, source: str) -> str:
    """The evaluation report rendered from Markdown, saying whose it is, its figures served under /report/plots/; a
    report that is not UTF-8 is a 503 with the reason (the server is fine, the file is not)."""
    try:
        text = markdown_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportUnavailable(f"the evaluation report ({source}) cannot be read: {exc}") from None
    body = markdown.markdown(text, extensions=["tables"])
    body = body.replace('src="plots/', 'src="/report/plots/')  # the report links its figures relative to itself
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>vaeops report</title>"
        f"<style>{REPORT_CSS}</style></head><body><p><a href='/'>back to the page</a> &middot; "
        f"<span id='report-source'>{html.escape(source)}</span></p>{body}</body></html>"
    )


def mount(app: FastAPI, plane: DataPlane) -> None:
    """Add the page, its static files, its endpoints and the report to the app; the work is the data plane's."""
    router = APIRouter(tags=["Page"])

    @router.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @router.get("/gallery")
    def test_images() -> dict[str, Any]:
        """Test images shipped with the model (a few of each class), for the page's gallery."""
        return plane.gallery()

    @router.post("/explain")
    async def explain_image(request: ExplainRequest) -> dict[str, Any]:
        """For one image: mean and sampled decodes, log p(x|mu) against E_q[log p(x|z)], KL, ELBO_K and L_K by K."""
        asked = (request.image, request.samples, request.seed, request.ks, request.repeats)
        return await plane.offload(plane.explain, *asked)

    @router.get("/model-card")
    def card() -> dict[str, Any]:
        """The served model's version, training data, headline metrics and promotion decision."""
        return plane.model_card()

    @router.get("/report", response_class=HTMLResponse)
    def report_page() -> HTMLResponse:
        """The evaluation report of the served model (shipped with it), else the latest one, as HTML."""
        found = plane.report()
        if found is None:
            where = plane.report_dir / "report.md"
            return HTMLResponse(f"<p>No report at {where}: run the pipeline (`make run`) first.</p>", status_code=404)
        return HTMLResponse(report_html(*found))

    @router.get("/report/plots/{name}", include_in_schema=False)
    def report_figure(name: str) -> Response:
        """A figure of the report shown at /report."""
        data = plane.report_figure(name)
        if data is None:
            return JSONResponse({"detail": f"no figure {name!r} in the report"}, status_code=404)
        return Response(data, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
