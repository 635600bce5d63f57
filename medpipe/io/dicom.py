"""Read one 2-D DICOM image to an 8-bit gray array plus the header facts a dataset records.

:func:`read_dicom` is the single DICOM reader of ``medpipe prepare``: a converter calls it in its
workers and turns each error class into a skipped entry (``error.kind`` is the skip kind, the
message names the file and says what to do). What it does, in order:

1. parse the file with pydicom (a file without the 128-byte preamble is read too);
2. refuse what is not one 2-D gray image: a modality outside ``modalities``, several frames, no
   pixel data (or a file cut short inside it), a transfer syntax whose decoder is not installed,
   compressed data that does not decode, palette colour;
3. decode the pixels (pydicom masks the bits above ``BitsStored`` and sign-extends signed data),
   apply the modality LUT (``RescaleSlope``/``RescaleIntercept``), map an intensity range to
   0..255 (:func:`intensity_range`), and invert ``MONOCHROME1`` so that dense is bright;
   colour (RGB/YBR) images become luma.

The header facts (:func:`header_facts`) include ``view`` (``ViewPosition``), ``age`` in years
(``PatientAge``, :func:`parse_age`), ``sex`` and ``pixel_spacing`` (``PixelSpacing``, else
``ImagerPixelSpacing``, in mm as ``[row, column]``) and the identifiers that key an export's
label table (``study_uid``, ``series_uid``, ``sop_uid``, ``accession``, ``study_date``).

pydicom is imported on first use, so importing this module is cheap.

Example:
    >>> img, head = read_dicom("stage_2_train_images/0004cfab.dcm", modalities=("CR", "DX"))  # doctest: +SKIP
    >>> img.dtype, head["view"], head["photometric"]  # doctest: +SKIP
    (dtype('uint8'), 'PA', 'MONOCHROME2')
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: intensity mappings to 8 bit (see :func:`intensity_range`)
INTENSITY_MODES = ("bits", "window", "minmax")
#: the (7FE0,0010) Pixel Data tag as it is written in a little-endian file
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_AGE_RE = re.compile(r"^\s*0*(\d+)\s*([YyMmWwDd]?)\s*$")
#: ages above this are typos in the source (the real RSNA headers have a few, e.g. 148)
MAX_AGE = 120


class DicomError(ValueError):
    """A DICOM file that cannot give one 2-D gray image; ``kind`` names the case for skip lists."""

    kind = "unreadable_dicom"

    def __init__(self, path, why: str, todo: str = ""):
        self.path, self.why = str(path), why
        super().__init__(f"{path}: {why}" + (f". {todo}" if todo else ""))


class DicomReadError(DicomError):
    """Not a DICOM file, or its header is damaged or cut short."""

    kind = "unreadable_dicom"


class DicomTruncatedError(DicomError):
    """The file ends inside its pixel data (an interrupted download or copy)."""

    kind = "truncated_dicom"


class DicomNoPixelDataError(DicomError):
    """A DICOM object without an image (a report, a presentation state, a header-only file)."""

    kind = "no_pixel_data"


class DicomCodecError(DicomError):
    """The pixel data is compressed with a transfer syntax whose decoder is not installed."""

    kind = "codec_missing"


class DicomDecodeError(DicomError):
    """A decoder is installed but the (compressed) pixel data does not decode: damaged data."""

    kind = "undecodable_pixels"


class DicomModalityError(DicomError):
    """The modality is not one the dataset expects (e.g. a CT slice among chest radiographs)."""

    kind = "wrong_modality"


class DicomMultiFrameError(DicomError):
    """Several frames (a cine loop, a tomosynthesis stack): not one 2-D image."""

    kind = "multi_frame"


class DicomUnsupportedError(DicomError):
    """A pixel layout this reader does not turn into gray (palette colour, float pixel data, 3-D)."""

    kind = "unsupported_dicom"


def parse_age(text) -> tuple[int | None, str]:
    """An age string (DICOM ``AS`` like ``"058Y"``, or plain ``"58"``) -> ``(whole years, how it was written)``.

    ``M``/``W``/``D`` (months, weeks, days) are converted to whole years. ``how`` is ``years``,
    ``suffixed``, ``missing``, ``invalid`` or ``implausible`` (above :data:`MAX_AGE`; the age is then None).

    Example:
        >>> parse_age("058Y"), parse_age("58"), parse_age("018M"), parse_age("414"), parse_age("")
        ((58, 'suffixed'), (58, 'years'), (1, 'suffixed'), (None, 'implausible'), (None, 'missing'))
    """
    if text is None or not str(text).strip():
        return None, "missing"
    m = _AGE_RE.match(str(text))
    if not m:
        return None, "invalid"
    v, unit = int(m.group(1)), m.group(2).upper()
    years = {"": v, "Y": v, "M": v // 12, "W": v // 52, "D": v // 365}[unit]
    if years > MAX_AGE:
        return None, "implausible"
    return years, "suffixed" if unit else "years"


def _first(v):
    """The first value of a multi-valued element (WindowCenter can hold several), else the value."""
    if v is None:
        return None
    try:
        return v[0] if not isinstance(v, (str, bytes)) and len(v) else v
    except TypeError:
        return v


def _float(v) -> float | None:
    try:
        f = float(_first(v))
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _text(v) -> str | None:
    s = str(v).strip() if v is not None else ""
    return s or None


def header_facts(ds) -> dict:
    """What a dataset records from a parsed DICOM header (no pixel data needed).

    Returns:
        JSON-ready dict: ``modality``, ``photometric``, ``rows``, ``columns``, ``frames``,
        ``samples_per_pixel``, ``bits_allocated``, ``bits_stored``, ``pixel_representation``,
        ``rescale`` (``[slope, intercept]`` or None), ``window`` (``[center, width]`` or None),
        ``transfer_syntax`` (UID) and ``transfer_syntax_name``, ``compressed``, ``patient_id``,
        ``view``, ``age``, ``age_text``, ``age_how``, ``sex``, ``pixel_spacing`` (``[row, col]`` mm
        or None), ``pixel_spacing_tag``, ``body_part``, ``sop_class``; the identifiers ``study_uid``
        (``StudyInstanceUID``), ``series_uid`` (``SeriesInstanceUID``), ``sop_uid``
        (``SOPInstanceUID``), ``accession`` (``AccessionNumber``) and ``study_date`` (``StudyDate``,
        as written, ``YYYYMMDD``), each None when absent or empty.
    """
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    slope, intercept = _float(ds.get("RescaleSlope")), _float(ds.get("RescaleIntercept"))
    center, width = _float(ds.get("WindowCenter")), _float(ds.get("WindowWidth"))
    spacing, tag = None, None
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(name)
        try:
            vals = [float(x) for x in (v if v is not None and not isinstance(v, (str, bytes)) else [v])]
        except (TypeError, ValueError):
            vals = []
        if len(vals) == 2 and all(np.isfinite(vals)) and min(vals) > 0:
            spacing, tag = [round(vals[0], 6), round(vals[1], 6)], name
            break
    age_text = _text(ds.get("PatientAge"))
    age, how = parse_age(age_text)
    sex = (_text(ds.get("PatientSex")) or "").upper() or None
    view = (_text(ds.get("ViewPosition")) or "").upper() or None

    def integer(name):
        v = ds.get(name)
        try:
            return int(v) if v is not None and str(v).strip() != "" else None
        except (TypeError, ValueError):
            return None

    return {
        "modality": (_text(ds.get("Modality")) or "").upper() or None,
        "photometric": (_text(ds.get("PhotometricInterpretation")) or "").upper() or None,
        "rows": integer("Rows"), "columns": integer("Columns"), "frames": integer("NumberOfFrames") or 1,
        "samples_per_pixel": integer("SamplesPerPixel") or 1,
        "bits_allocated": integer("BitsAllocated"), "bits_stored": integer("BitsStored"),
        "pixel_representation": integer("PixelRepresentation") or 0,
        "rescale": None if slope is None and intercept is None else [1.0 if slope is None else slope,
                                                                     0.0 if intercept is None else intercept],
        "window": None if center is None or not width or width <= 0 else [center, width],
        "transfer_syntax": str(ts) if ts else None,
        "transfer_syntax_name": getattr(ts, "name", None) if ts else None,
        "compressed": bool(ts is not None and getattr(ts, "is_compressed", False)),
        "patient_id": _text(ds.get("PatientID")),
        "view": view, "age": age, "age_text": age_text, "age_how": how,
        "sex": sex, "pixel_spacing": spacing, "pixel_spacing_tag": tag,
        "body_part": _text(ds.get("BodyPartExamined")),
        "sop_class": str(ds.get("SOPClassUID")) if ds.get("SOPClassUID") else None,
        "study_uid": _text(ds.get("StudyInstanceUID")), "series_uid": _text(ds.get("SeriesInstanceUID")),
        "sop_uid": _text(ds.get("SOPInstanceUID")), "accession": _text(ds.get("AccessionNumber")),
        "study_date": _text(ds.get("StudyDate")),
    }


def intensity_range(head: dict, values: np.ndarray, mode: str = "bits") -> tuple[float, float, str]:
    """The modality-value range ``(lo, hi)`` mapped to 0..255, and the mode actually used.

    Modes:
        ``bits``: the whole range the stored bits can hold (``BitsStored``: 0..2^n-1, or the signed
        range), passed through the rescale; the same file always gives the same gray levels, and
        12-bit data in 16-bit words is scaled by 4095, not by 65535.
        ``window``: the header's ``WindowCenter``/``WindowWidth`` (DICOM linear VOI); ``bits``
        when the header has none.
        ``minmax``: the image's own minimum and maximum.

    Example:
        >>> intensity_range({"bits_stored": 12, "pixel_representation": 0, "rescale": None}, np.zeros(1))
        (0.0, 4095.0, 'bits')
    """
    if mode not in INTENSITY_MODES:
        raise ValueError(f"intensity mode {mode!r}: expected one of {', '.join(INTENSITY_MODES)}")
    if mode == "window" and head.get("window"):
        c, w = head["window"]
        # DICOM PS3.3 C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 -> min; x > c - 0.5 + (w-1)/2 -> max
        return c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2, "window"
    if mode == "minmax":
        return float(values.min()), float(values.max()), "minmax"
    bits = head.get("bits_stored") or head.get("bits_allocated") or 8
    if head.get("pixel_representation"):
        lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    else:
        lo, hi = 0.0, 2.0 ** bits - 1
    slope, intercept = head.get("rescale") or (1.0, 0.0)
    a, b = lo * slope + intercept, hi * slope + intercept
    return min(a, b), max(a, b), "bits"


def to_uint8(values: np.ndarray, lo: float, hi: float, invert: bool = False) -> np.ndarray:
    """Map ``[lo, hi]`` linearly to 0..255 (clipped, rounded); ``invert`` for MONOCHROME1.

    Example:
        >>> to_uint8(np.array([0.0, 2047.5, 4095.0]), 0, 4095).tolist(), to_uint8(np.array([0.0]), 0, 1, True).tolist()
        ([0, 128, 255], [255])
    """
    span = hi - lo
    if span <= 0:
        out = np.zeros(values.shape, np.float32)
    else:
        out = (np.asarray(values, np.float32) - np.float32(lo)) * np.float32(255.0 / span)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return 255 - out if invert else out


@contextlib.contextmanager
def _quiet_pydicom():
    """pydicom warns and logs (decoder failures with a traceback) what :func:`read_dicom` reports in words."""
    log = logging.getLogger("pydicom")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _parse(data: bytes, path: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        pass  # no preamble/"DICM": many archives write such files; try once more without it
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for a damaged header
        raise DicomReadError(path, f"the DICOM header cannot be parsed ({type(e).__name__}: {e})",
                             "The file is damaged or cut short; download it again") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as e:  # noqa: BLE001
        raise DicomReadError(path, f"not a DICOM file ({type(e).__name__}: {e})",
                             "Remove it, or replace it with the DICOM it should be") from None
    if "Rows" not in ds and "SOPClassUID" not in ds and "PixelData" not in ds:
        raise DicomReadError(path, "not a DICOM file (no DICM marker and no image elements)",
                             "Remove it, or replace it with the DICOM it should be")
    return ds


def read_dicom(path: str | Path, modalities: Sequence[str] | None = None, intensity: str = "bits",
               data: bytes | None = None) -> tuple[np.ndarray, dict]:
    """Read one 2-D DICOM image as 8-bit gray (dense = bright) and its header facts.

    Args:
        path: the file (also the name used in error messages).
        modalities: accepted ``Modality`` values (e.g. ``("CR", "DX")``); None accepts any. A file
            without a Modality element is accepted (``head["modality"]`` is then None).
        intensity: ``bits`` | ``window`` | ``minmax`` (see :func:`intensity_range`).
        data: the file's bytes when already read.

    Returns:
        ``(image, head)``: a ``uint8`` array ``[rows, columns]``; :func:`header_facts` plus
        ``intensity`` (the mode used), ``range`` (``[lo, hi]`` in modality values), ``inverted``
        (MONOCHROME1) and ``converted_from`` (``RGB``/``YBR_...`` for colour input, else None).

    Raises:
        DicomReadError, DicomTruncatedError, DicomNoPixelDataError, DicomCodecError,
        DicomDecodeError, DicomModalityError, DicomMultiFrameError, DicomUnsupportedError (all
        :class:`DicomError`, a ValueError): each names the file, what is wrong and what to do.
    """
    with _quiet_pydicom():
        return _read(str(path), modalities, intensity, data)


def _read(p: str, modalities, intensity: str, data: bytes | None) -> tuple[np.ndarray, dict]:
    if data is None:
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DicomReadError(p, f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise DicomReadError(p, "the file is empty", "Download it again")
    ds = _parse(data, p)
    head = header_facts(ds)
    if modalities is not None and head["modality"] is not None and head["modality"] not in modalities:
        raise DicomModalityError(p, f"modality {head['modality']} (expected {' or '.join(modalities)})",
                                 "It is not an image of this dataset; remove it from the folder")
    if head["frames"] > 1:
        raise DicomMultiFrameError(p, f"{head['frames']} frames (NumberOfFrames); expected one 2-D image",
                                   "Export the frame you want as a single-frame DICOM")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicomUnsupportedError(p, "float pixel data (parametric map), not an image of stored integers")
    if "PixelData" not in ds:
        if _PIXEL_DATA_TAG in data:
            raise DicomTruncatedError(p, f"the file ends inside its pixel data ({len(data)} bytes; truncated)",
                                      "Download or copy it again")
        raise DicomNoPixelDataError(p, "no pixel data (a DICOM object without an image"
                                       + (f", SOP class {head['sop_class']}" if head["sop_class"] else "") + ")",
                                    "Remove it from the image folder")
    if not head["rows"] or not head["columns"]:
        raise DicomReadError(p, "no Rows/Columns in the header", "The file is damaged; download it again")
    photometric = head["photometric"] or "MONOCHROME2"
    if photometric.startswith("PALETTE"):
        raise DicomUnsupportedError(p, "palette colour image (PALETTE COLOR), not a gray radiograph")
    ts = head["transfer_syntax"]
    if ts is None:
        raise DicomReadError(p, "no Transfer Syntax UID in the file meta header",
                             "The file is damaged; download it again")
    if head["compressed"]:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            need = "; ".join(decoder.missing_dependencies if decoder is not None else [])  # "gdcm - requires ..."
            hint = (f"Install a decoder for it ({need}), or convert the file to an uncompressed transfer syntax"
                    if need else "No decoder exists in pydicom for it; convert the file to an uncompressed "
                                 "transfer syntax")
            raise DicomCodecError(p, f"pixel data compressed as {head['transfer_syntax_name'] or ts} ({ts}), "
                                     f"and no decoder for it is installed", hint)
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        if "less than expected" in str(e):
            m = re.search(r"\((\d+) vs (\d+) bytes\)", str(e))
            got = f" ({m.group(1)} of {m.group(2)} bytes)" if m else ""
            raise DicomTruncatedError(p, f"the pixel data is shorter than Rows x Columns x BitsAllocated say{got}; "
                                         f"truncated", "Download or copy it again") from None
        detail = " ".join(str(e).split())[:240]
        raise DicomDecodeError(p, f"the pixel data does not decode ({head['transfer_syntax_name'] or ts}: "
                                  f"{detail})", "The file is damaged; download it again") from None
    converted = None
    if arr.ndim == 3 and head["samples_per_pixel"] == 3:
        # pydicom returns RGB (YBR is converted); ITU-R 601 luma, as Pillow's "L"
        converted = photometric
        arr = arr[..., 0] * np.float32(0.299) + arr[..., 1] * np.float32(0.587) + arr[..., 2] * np.float32(0.114)
    if arr.ndim != 2:
        raise DicomUnsupportedError(p, f"pixel array of shape {tuple(arr.shape)}; expected one 2-D image")
    invert = photometric == "MONOCHROME1"
    if converted is not None:
        img, lo, hi, used = to_uint8(arr, 0.0, 255.0, invert=invert), 0.0, 255.0, "rgb"
    else:
        rescale = head["rescale"]
        if rescale is not None and rescale != [1.0, 0.0]:
            values = arr.astype(np.float32) * np.float32(rescale[0]) + np.float32(rescale[1])
        else:
            values = arr
        lo, hi, used = intensity_range(head, values, intensity)
        if values.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):  # 8-bit data in the 8-bit range (the
            img = 255 - values if invert else values  # common case): nothing to compute
        else:
            img = to_uint8(values, lo, hi, invert=invert)
    head.update({"intensity": used, "range": [lo, hi], "inverted": invert, "converted_from": converted})
    return img, head
