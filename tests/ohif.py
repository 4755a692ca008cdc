"""OHIF Viewer 3.13.2 (the real prebuilt one) in headless Chromium, for the viewer tests.

The viewer comes from the npm package ``@ohif/app`` (its ``dist/`` folder), cached by
``.ci/fetch-ohif-viewer`` in ``${DICOM_REPO_CACHE:-~/.cache/dicom-repo}/ohif-app-VERSION/dist``:
fetching it is an install step, never done by the tests. Chromium is Debian's ``chromium``
package driven by playwright for Python (no browser download). Both are installed by
``.ci/run``; without them the tests fail under CI and are skipped, loudly, elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

OHIF_VERSION = "3.13.2"
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


class ViewerUnavailable(RuntimeError):
    """The cached viewer, Chromium or playwright is missing (an install step was not run)."""


def viewer_dist(version: str = OHIF_VERSION) -> Path:
    """The cached ``dist/`` folder of ``@ohif/app@version``."""
    cache = Path(os.environ.get("DICOM_REPO_CACHE") or Path.home() / ".cache" / "dicom-repo")
    dist = cache / f"ohif-app-{version}" / "dist"
    if not (dist / "index.html").is_file():
        raise ViewerUnavailable(
            f"OHIF Viewer {version} is not cached in {dist}: run .ci/fetch-ohif-viewer"
        )
    return dist


def chromium_path() -> str:
    """Debian's Chromium executable."""
    found = next((p for p in CHROMIUM_PATHS if os.access(p, os.X_OK)), None)
    found = found or shutil.which("chromium")
    if not found:
        raise ViewerUnavailable("Chromium is not installed: apt-get install chromium")
    return found


@dataclass(frozen=True)
class Exchange:
    """One request the viewer made to the DICOMweb root, and its answer."""

    method: str
    path: str
    status: int | None
    accept: str
    content_type: str

    def __str__(self) -> str:
        answer = f"{self.status} [{self.content_type}]"
        return f"{self.method} {self.path} -> {answer} (Accept: {self.accept})"


@dataclass
class Session:
    """What one page saw: its DICOMweb exchanges, console errors and failed requests."""

    root_path: str
    exchanges: list[Exchange] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def record(self, response: Any) -> None:
        """Keep a response if it answers a request to the DICOMweb root."""
        parts = urlsplit(response.url)
        if not parts.path.startswith(self.root_path):
            return
        path = parts.path[len(self.root_path) :] + (f"?{parts.query}" if parts.query else "")
        headers = response.request.headers
        self.exchanges.append(
            Exchange(
                response.request.method,
                path,
                response.status,
                headers.get("accept", ""),
                response.headers.get("content-type", ""),
            )
        )

    def failed(self) -> list[Exchange]:
        """Exchanges not answered with a 2xx status."""
        return [e for e in self.exchanges if e.status is None or not 200 <= e.status < 300]

    def report(self) -> str:
        """Every exchange, one a line (for assertion messages and the test log)."""
        lines = [str(e) for e in self.exchanges] + self.failures
        return "\n".join(lines + [f"console: {c}" for c in self.console_errors])


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium with software WebGL."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise ViewerUnavailable(f"playwright is not installed: {error}") from error
    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# The first-visit tour and the "investigational use" banner would cover the viewports.
_SKIP_FIRST_VISIT = """
localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));
sessionStorage.setItem('investigationalUseDialog', 'hidden');
localStorage.setItem('investigationalUseDialog', JSON.stringify({expiryDate: '2999-01-01'}));
"""


@contextmanager
def viewer_page(chromium: Any, root_path: str = "/dicom-web") -> Iterator[tuple[Any, Session]]:
    """A fresh page (own storage, no service worker) recording its DICOMweb exchanges."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.add_init_script(_SKIP_FIRST_VISIT)
    page = context.new_page()
    page.set_default_timeout(45_000)
    session = Session(root_path)
    page.on("response", session.record)
    page.on("requestfailed", lambda r: session.failures.append(f"FAILED {r.url}: {r.failure}"))
    page.on("console", lambda m: m.type == "error" and session.console_errors.append(m.text))
    try:
        yield page, session
    finally:
        context.close()


STUDY_ROWS = "table tbody tr[aria-selected]"  # the filter row has no aria-selected


def study_list_rows(page: Any, base_url: str, count: int) -> list[str]:
    """Open the study list and return the text of its rows once ``count`` are shown."""
    page.goto(f"{base_url}/")
    page.wait_for_function(
        f"document.querySelectorAll({STUDY_ROWS!r}).length >= {count}", polling=200
    )
    return [str(t) for t in page.locator(STUDY_ROWS).all_inner_texts()]


# A viewport is "loaded" when cornerstone has the image data of an image of the given study.
_LOADED = """(studyUid) => {
  const cs = window.cornerstone;
  if (!cs || !cs.getEnabledElements) return null;
  for (const enabled of cs.getEnabledElements()) {
    const vp = enabled.viewport;
    const data = vp && vp.getImageData && vp.getImageData();
    const imageId = vp && vp.getCurrentImageId && vp.getCurrentImageId();
    if (data && imageId && imageId.includes(studyUid) && data.dimensions) {
      return {id: vp.id, imageId, dimensions: Array.from(data.dimensions)};
    }
  }
  return null;
}"""

# The luminance of the viewport's on-screen canvas (what the user sees), as a flat list, and the
# canvas luminance under the centre of every pixel of the displayed image (rows x columns).
_CANVAS = """(viewportId) => {
  const enabled = window.cornerstone.getEnabledElements();
  const vp = enabled.find(e => e.viewport.id === viewportId).viewport;
  const canvas = vp.canvas;
  const {width, height} = canvas;
  const rgba = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  const grey = new Array(width * height);
  for (let i = 0; i < width * height; i++) {
    grey[i] = Math.round(0.299 * rgba[4*i] + 0.587 * rgba[4*i+1] + 0.114 * rgba[4*i+2]);
  }
  const image = vp.getImageData();
  const [columns, rows] = image.dimensions;
  const ratio = width / canvas.clientWidth;
  const sampled = new Array(rows * columns).fill(-1);
  for (let j = 0; j < rows; j++) {
    for (let i = 0; i < columns; i++) {
      const [x, y] = vp.worldToCanvas(image.imageData.indexToWorld([i, j, 0]));
      const cx = Math.floor(x * ratio), cy = Math.floor(y * ratio);
      if (cx >= 0 && cy >= 0 && cx < width && cy < height) {
        sampled[j * columns + i] = grey[cy * width + cx];
      }
    }
  }
  return {width, height, grey, rows, columns, sampled};
}"""


# True once the viewport's canvas is no longer all black.
_DRAWN = """(viewportId) => {
  const enabled = window.cornerstone.getEnabledElements();
  const canvas = enabled.find(e => e.viewport.id === viewportId).viewport.canvas;
  const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i] + rgba[i + 1] + rgba[i + 2] > 0) return true;
  return false;
}"""


@dataclass(frozen=True)
class Rendered:
    """A loaded viewport: its current imageId, image dimensions and canvas grey levels."""

    image_id: str
    dimensions: list[int]
    canvas: np.ndarray
    under_pixels: np.ndarray
    """The canvas grey level under each image pixel's centre (-1 where off the canvas)."""


def open_from_list(
    page: Any, row_text: str, study_uid: str, mode: str = "Basic Viewer"
) -> Rendered:
    """Select the study list row showing ``row_text``, launch ``mode``; wait for a drawn image.

    Navigation stays inside the single-page application, as a user's clicks do.
    """
    page.locator(STUDY_ROWS).filter(has_text=row_text).click()
    page.get_by_role("button", name=mode, exact=True).click()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    loaded = page.wait_for_function(_LOADED, arg=study_uid, polling=250).json_value()
    page.wait_for_load_state("networkidle")
    # Decoding (in a web worker) and drawing come after the image data is set; if the canvas
    # stays black, the caller's assertions on it say what is wrong.
    with suppress(PlaywrightTimeout):
        page.wait_for_function(_DRAWN, arg=loaded["id"], polling=250, timeout=20_000)
    page.wait_for_timeout(300)
    canvas = page.evaluate(_CANVAS, loaded["id"])
    grey = np.array(canvas["grey"], dtype=np.float64).reshape(canvas["height"], canvas["width"])
    under = np.array(canvas["sampled"], dtype=np.float64).reshape(canvas["rows"], canvas["columns"])
    return Rendered(loaded["imageId"], loaded["dimensions"], grey, under)


def back_to_list(page: Any, count: int) -> None:
    """Go back from the viewer to the study list (browser history)."""
    page.go_back()
    page.wait_for_function(
        f"document.querySelectorAll({STUDY_ROWS!r}).length >= {count}", polling=200
    )


ERROR_NOTIFICATIONS = "[data-sonner-toast][data-type='error'], [role='alertdialog']"


def error_notifications(page: Any) -> list[str]:
    """The text of every error toast or error dialog on the page."""
    return [str(t) for t in page.locator(ERROR_NOTIFICATIONS).all_inner_texts()]


def image_region(canvas: np.ndarray, background: float = 0.0) -> np.ndarray:
    """The bounding box of the canvas pixels brighter than the (black) background."""
    rows = np.flatnonzero((canvas > background).any(axis=1))
    cols = np.flatnonzero((canvas > background).any(axis=0))
    if rows.size == 0:
        return canvas[:0, :0]
    return canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def display_correlation(stored: np.ndarray, shown: np.ndarray) -> tuple[float, float]:
    """How well the grey levels shown follow the stored pixel values.

    Window/level maps stored values linearly onto 0..255 and clips the rest, so among the
    pixels shown neither black nor white the two are linearly related: their correlation is
    ~1 for the right image, ~0 for noise or another image. Returns the correlation and the
    fraction of pixels it was computed on.
    """
    inside = (shown > 0) & (shown < 255)
    if inside.sum() < 16:
        return 0.0, float(inside.mean())
    a, b = stored[inside].astype(np.float64), shown[inside]
    if a.std() == 0 or b.std() == 0:
        return 0.0, float(inside.mean())
    return float(np.corrcoef(a, b)[0, 1]), float(inside.mean())


def neighbour_correlation(region: np.ndarray) -> float:
    """Correlation of each pixel with its right-hand neighbour: ~1 for an image, ~0 for noise."""
    left, right = region[:, :-1].ravel(), region[:, 1:].ravel()
    if left.size < 2 or left.std() == 0 or right.std() == 0:
        return 0.0
    return float(np.corrcoef(left, right)[0, 1])
