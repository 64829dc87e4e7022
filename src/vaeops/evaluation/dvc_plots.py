"""`vaeops plots`: `dvc plots show` as an HTML page that renders with no network.

DVC's own page loads Vega, Vega-Lite and vega-embed from a CDN, so its interactive plots stay blank offline. This
command hands DVC an HTML template (`--html-template`) that carries those libraries inline, taken from the installed
vl-convert-python package (`vl_convert.javascript_bundle`, Vega-Lite 5 as DVC's specs are), and leaves out DVC's CDN
script tags. Reads the plots that dvc.yaml declares (training curves, reports/eval/*.csv, reports/plots/*.png);
writes `<out>/index.html` beside DVC's copies of the images.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from vaeops.core.errors import VaeopsError
from vaeops.core.params import load_params

VEGA_LITE = "5.21"  # the Vega-Lite major version DVC's plot templates are written for
STYLE = "body{font-family:system-ui,sans-serif;margin:1rem}table{border-spacing:15px}img{max-width:640px}"


class PlotsError(VaeopsError):
    """`dvc plots show` failed (no plots yet, or DVC itself refused)."""


def template() -> str:
    """A DVC HTML template with the Vega libraries inline and DVC's {plot_divs} placeholder, and no {scripts}."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    if "</script" in bundle or "{plot_divs}" in bundle:
        raise PlotsError("the Vega bundle cannot be inlined as is (it contains '</script' or '{plot_divs}')")
    return (
        f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>vaeops: DVC plots</title>\n'
        f"<style>{STYLE}</style>\n<script>{bundle}</script>\n</head>\n<body>\n{{plot_divs}}\n</body>\n</html>\n"
    )


def render(out: str | Path = "dvc_plots", repo: str | Path = ".") -> Path:
    """Run `dvc plots show` in `repo` with the offline template; return the HTML file it wrote."""
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.html"
        path.write_text(template(), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(path), "-o", str(out)],
            cwd=repo,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise PlotsError(f"dvc plots show failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return out / "index.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `vaeops plots`."""
    parser.add_argument("--out", default="dvc_plots", help="output folder (default: %(default)s)")


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops plots`: write the offline plots page and say where it is."""
    load_params(args.params, args.overrides)  # DVC reads params.yaml for the plots: refuse a broken one first
    print(f"plots: {render(args.out)} (opens with no network)")
