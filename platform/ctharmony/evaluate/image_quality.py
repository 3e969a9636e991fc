"""Image quality of one series for the cohort tables: noise, noise texture, edge sharpness, agreement with the truth.

Every measure needs the exam's true liver mask on the series grid; the noise-free truth images
(``<truth_images>/<StudyInstanceUID>/T80.npz``, as ``ctharmony simulate`` writes them) are optional.
The columns (NaN when an input is missing or a measure is undefined, never an error):

- ``noise_sd_hu``: SD of the noise in a uniform liver ROI, the true liver eroded ``ERODE_MM`` in-plane
  without its vessels (T80 pixels more than ``VESSEL_BAND_HU`` from the liver's median T80, or,
  without truth images, image pixels outside the ROI median ± 4 robust SDs). The noise is the image
  minus the noise-free truth image of the same energy (T80 for converted series, which are meant to be
  80 keV, and for original M80; T40 / T60 for original M40 / M60 when given); otherwise it is the image
  itself in the ROI, i.e. the SD a reader measures with an ROI. Never image minus a smoothed copy,
  which discards the low-frequency noise that dominates smooth kernels and iterative reconstruction.
- ``nps_peak_lp_mm``, ``nps_mean_lp_mm``: peak and mean frequency of the radial NPS of that noise, from
  half-overlapping square patches wholly inside the true liver (eroded one pixel), the largest patch of
  ``PATCHES_PX`` that gives 8 patches, else 3 (``nps_patch_px``: 16 px at 128 px images, 8 px at 64 px).
- ``edge_width_mm``: the 10-90 % width of the edge spread function across the true liver boundary
  (within max(6 mm, 4 pixels) of it). With truth images, only the liver-fat boundary counts (outside
  pixels whose T80 is in ``FAT_BAND_HU``), so neighbouring organs stay out of the outer plateau;
  without them every neighbour enters it, and at 64 px (5 mm pixels) that anatomy can dominate it.
- ``mae_t80_hu``, ``ssim_t80``: MAE (HU) and SSIM (abdominal window W400 L40) against the noise-free
  T80 within the body (T80 > ``BODY_HU``, holes filled), whatever the method.

Example::

    quality = SeriesQuality(SeriesImages(series_files(catalog), truth_images=Path("OUT/truth")))
    row |= quality(record, true_mask, "exam-001")   # record: a cohort mask-table row
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ctharmony.archive.volume import Volume
from ctharmony.evaluate import texture
from ctharmony.evaluate.naming import ORIGINAL

log = logging.getLogger(__name__)

COLUMNS = ("noise_sd_hu", "nps_peak_lp_mm", "nps_mean_lp_mm", "edge_width_mm", "mae_t80_hu", "ssim_t80")
TRUTH_OF = {"M40": "T40", "M60": "T60", "M80": "T80"}  # protocols that are a noise-free truth energy
ERODE_MM = 6.0
VESSEL_BAND_HU = 20.0
FAT_BAND_HU = (-150.0, -50.0)  # T80 of fat: the only outside of the liver the edge width looks at
MIN_ROI_PIXELS = 30
PATCHES_PX = (32, 24, 16, 12, 8)
MIN_PATCHES = (8, 3)  # wanted, then accepted (64 px images)
BODY_HU = -500.0
WINDOW_HU = (-160.0, 240.0)  # abdomen: level 40, width 400
POSITION_TOLERANCE_MM = 0.1


def empty() -> dict[str, float]:
    """The image-quality columns, all NaN."""
    return dict.fromkeys((*COLUMNS, "nps_patch_px"), float("nan"))


def find_catalog(results: Sequence[str | Path]) -> Path | None:
    """A ``catalog.parquet`` beside the first results file or one folder up, if there is one."""
    if not results:
        return None
    first = Path(results[0]).resolve()
    for candidate in (first.parent / "catalog.parquet", first.parent.parent / "catalog.parquet"):
        if candidate.is_file():
            return candidate
    return None


def series_files(catalog: str | Path | None) -> dict[str, list[str]]:
    """``{series_key: files}`` of a catalog (every status); empty, with a warning, when it cannot be read."""
    from ctharmony.archive import CatalogError, read_catalog

    if catalog is None:
        return {}
    try:
        return {row.series_key: list(row.files) for row in read_catalog(catalog).series(status=None)}
    except CatalogError as err:
        log.warning("original images: cannot use the catalog (%s)", err)
        return {}


def read_volume(source: str | Path | Sequence[str] | None) -> Volume | None:
    """A DICOM series (a folder of ``*.dcm`` or a file list) as a :class:`Volume`; None, with a warning, if unreadable.

    Example::

        vol = read_volume("OUT/series/1.2.3/harmonized")
        vol.hu.shape, vol.spacing   # -> (40, 128, 128), (3.0, 2.81, 2.81)
    """
    from ctharmony.archive.reader import SeriesReadError, read_series

    if source is None or (isinstance(source, str) and not source):
        return None
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            return None
        files: list[Any] = sorted(folder.glob("*.dcm")) or sorted(p for p in folder.iterdir() if p.is_file())
    else:
        files = list(source)
    if not files:
        return None
    try:
        return read_series(files)
    except SeriesReadError as err:
        log.warning("cannot read a series image: %s", str(err).splitlines()[0][:300])
        return None


def load_truth_image(folder: Path, study_uid: str, name: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(hu, positions)`` of ``<folder>/<study_uid>/<name>.npz``; None when absent, a warning when unreadable."""
    path = Path(folder) / study_uid / f"{name}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            hu = np.asarray(data["hu"], np.float32)
            positions = np.asarray(data["positions"], np.float64).reshape(-1, 3) if "positions" in data else None
    except (OSError, KeyError, ValueError) as err:
        log.warning("cannot read truth image %s: %s", path.name, err)
        return None
    return (hu, positions) if hu.ndim == 3 else None


def align_truth(truth: tuple[np.ndarray, np.ndarray | None], volume: Volume) -> np.ndarray | None:
    """The truth image's slices at the series' slice positions (None when its grid differs from the series')."""
    hu, positions = truth
    if hu.shape[1:] != volume.hu.shape[1:]:
        return None
    if positions is None or len(positions) != len(hu):
        return hu if hu.shape == volume.hu.shape else None
    distance = np.linalg.norm(volume.positions[:, None, :] - positions[None, :, :], axis=2)
    nearest = distance.argmin(axis=1)
    if not np.all(distance[np.arange(len(nearest)), nearest] <= POSITION_TOLERANCE_MM):
        return None
    return hu[nearest]


def pixel_mm(volume: Volume) -> float:
    """In-plane pixel size (mm): the geometric mean of the row and column spacing."""
    return float(np.sqrt(volume.spacing[1] * volume.spacing[2]))


def _in_plane(mask: np.ndarray, radius_px: int) -> np.ndarray:
    if radius_px <= 0:
        return mask
    yy, xx = np.mgrid[-radius_px:radius_px + 1, -radius_px:radius_px + 1]
    return ndimage.binary_erosion(mask, (yy**2 + xx**2 <= radius_px**2)[None])


def nps_patch(region: np.ndarray) -> int | None:
    """The largest side of ``PATCHES_PX`` giving ``MIN_PATCHES[0]`` half-overlapping patches inside ``region``,
    else the largest giving ``MIN_PATCHES[1]`` (small images); None when not even that fits."""
    counts = {}
    for patch in PATCHES_PX:
        inside = ndimage.uniform_filter(region.astype(np.float32), (1, patch, patch), mode="constant") > 0.999
        half = patch // 2
        counts[patch] = int(inside[:, half:region.shape[1] - patch + half + 1:half,
                                   half:region.shape[2] - patch + half + 1:half].sum())
    for minimum in MIN_PATCHES:
        for patch in PATCHES_PX:
            if counts[patch] >= minimum:
                return patch
    return None


def body_mask(t80: np.ndarray) -> np.ndarray:
    """The body on the truth image: T80 above ``BODY_HU`` with holes (gas, lung) filled, per slice."""
    return np.stack([ndimage.binary_fill_holes(s > BODY_HU) for s in t80])


def measure(image: np.ndarray, px: float, true_mask: np.ndarray, noise_free: np.ndarray | None = None,
            t80: np.ndarray | None = None) -> dict[str, float]:
    """Image-quality columns of one series (HU, ``(z, y, x)``, square pixels of ``px`` mm) on its true mask.

    ``noise_free``: the truth image of the series' energy (its residual is the noise); ``t80``: the
    noise-free 80 keV image (vessel exclusion, body, MAE, SSIM). Example::

        measure(hu, 0.8, liver, noise_free=t80, t80=t80)["noise_sd_hu"]
    """
    out = empty()
    liver = np.asarray(true_mask).astype(bool)
    if not liver.any():
        return out
    image = np.asarray(image, np.float32)
    noise = image - noise_free if noise_free is not None else image
    eroded = _in_plane(liver, int(round(ERODE_MM / px)))
    if t80 is not None:
        vessels = np.abs(t80 - np.median(t80[liver])) > VESSEL_BAND_HU
        roi = texture.uniform_roi(liver, px, ERODE_MM, exclude=vessels)
    elif eroded.any():
        values = image[eroded]
        centre = float(np.median(values))
        spread = 4.0 * 1.4826 * float(np.median(np.abs(values - centre)))
        roi = eroded & (np.abs(image - centre) <= max(spread, 1.0))
    else:
        roi = eroded
    if int(roi.sum()) >= MIN_ROI_PIXELS:
        out["noise_sd_hu"] = float(noise[roi].std())
    region = _in_plane(liver, 1)
    patch = nps_patch(region)
    if patch is not None:
        out["nps_peak_lp_mm"], out["nps_mean_lp_mm"] = texture.nps_peak_mean(noise, px, roi=region, patch=patch)
        out["nps_patch_px"] = float(patch)
    try:
        fat = None if t80 is None else (t80 >= FAT_BAND_HU[0]) & (t80 <= FAT_BAND_HU[1])
        profile = texture.edge_profile(image, liver, px, reach_mm=max(ERODE_MM, 4.0 * px), outside=fat)
        out["edge_width_mm"] = texture.edge_width_mm(profile)
    except ValueError as err:
        log.debug("edge width undefined: %s", err)
    if t80 is not None:
        body = body_mask(t80)
        if body.any():
            out["mae_t80_hu"] = texture.mae(image, t80, body)
            low, high = WINDOW_HU
            out["ssim_t80"] = texture.ssim(np.clip(image, low, high), np.clip(t80, low, high),
                                           data_range=high - low, mask=body)
    return out


class SeriesImages:
    """The images of mask-table rows: a series' HU volume and its exam's truth images on the series' slices.

    Originals are read from the catalog's files (``files``: series key -> file list), converted series
    from the row's ``output_dir``. The last volume read is kept, so measures of one row share one read;
    truth images are read once per exam, and only the current exam's are held.
    """

    def __init__(self, files: dict[str, list[str]], truth_images: str | Path | None = None) -> None:
        self.files = files
        self.truth_images = Path(truth_images) if truth_images is not None else None
        self.unreadable = 0
        self._last: tuple[Any, Volume | None] = (None, None)
        self._truth: dict[tuple[str, str], Any] = {}
        self._warned: set[tuple[str, str, str]] = set()

    def source(self, record: dict[str, Any]) -> Any:
        if record["method"] == ORIGINAL:
            return self.files.get(record["series_key"])
        return record.get("output_dir") or None

    def volume(self, record: dict[str, Any]) -> Volume | None:
        """The row's series (None when unreadable, counted once in ``unreadable``)."""
        key = (record["series_key"], record["method"])
        if self._last[0] != key:
            volume = read_volume(self.source(record))
            self.unreadable += volume is None
            self._last = (key, volume)
        return self._last[1]

    def _truth_image(self, study: str, name: str) -> tuple[np.ndarray, np.ndarray | None] | None:
        if self.truth_images is None:
            return None
        key = (study, name)
        if any(cached != study for cached, _ in self._truth):  # rows come exam by exam: hold one exam's images
            self._truth.clear()
        if key not in self._truth:
            self._truth[key] = load_truth_image(self.truth_images, study, name)
        return self._truth[key]

    def truth(self, study: str, name: str, volume: Volume, exam: str, protocol: str) -> np.ndarray | None:
        """Truth image ``name`` (e.g. T80) of the study on the series' slices; None if absent or on another grid."""
        truth = self._truth_image(study, name)
        if truth is None:
            return None
        aligned = align_truth(truth, volume)
        if aligned is None and (exam, protocol, name) not in self._warned:  # once, not once per method
            self._warned.add((exam, protocol, name))
            log.warning("%s %s: truth image %s has shape %s, the series %s (or other slice positions); "
                        "left out", exam, protocol, name, truth[0].shape, volume.hu.shape)
        return aligned


class SeriesQuality:
    """``quality(record, true_mask, exam)``: the image-quality columns of one mask-table row."""

    def __init__(self, images: SeriesImages, reference_protocol: str = "M80") -> None:
        self.images = images
        self.reference_protocol = reference_protocol

    def __call__(self, record: dict[str, Any], true_mask: np.ndarray, exam: str) -> dict[str, float]:
        volume = self.images.volume(record)
        if volume is None:
            return empty()
        protocol, method = record["protocol"], record["method"]
        if volume.hu.shape != true_mask.shape:
            log.warning("%s %s %s: image shape %s differs from its mask's %s; no image quality", exam, protocol,
                        method, volume.hu.shape, true_mask.shape)
            return empty()
        study = record["study_uid"]
        energy = TRUTH_OF.get(protocol if method == ORIGINAL else self.reference_protocol)
        t80, noise_free = self.images.truth(study, "T80", volume, exam, protocol), None
        if energy is not None:
            noise_free = t80 if energy == "T80" else self.images.truth(study, energy, volume, exam, protocol)
        return measure(volume.hu, pixel_mm(volume), true_mask, noise_free=noise_free, t80=t80)
