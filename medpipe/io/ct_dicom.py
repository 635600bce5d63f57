"""CT slices as single-frame DICOM files: write a series, read headers and Hounsfield units, order and window them.

Generic over CT datasets distributed as one DICOM file per axial slice (a head-CT challenge's
download, a hospital export). What it does:

- :func:`write_ct_series`: a float HU volume ``(Z, Y, X)`` -> one valid CT Image Storage file per
  slice with real header tags (patient/study/series/SOP identifiers, ``ImagePositionPatient`` and
  ``ImageOrientationPatient``, spacing, rescale, VOI windows -- several at once as a multi-valued
  element, as scanners write them, ``ConvolutionKernel``); optionally reproducing a known bad
  encoding (:data:`QUIRKS`). pydicom and SimpleITK read the files.
- :func:`read_ct_header`: the header facts that group, order and describe a slice, read without the
  pixel data (a few kB per file): identifiers, the slice position ``z`` along the slice normal,
  spacing, the first value of each multi-valued window element, rescale, bits.
- :func:`read_ct_hu`: the slice in HU (``float32``), with the 12-bit wrap fix (:func:`fix_bits12`)
  for files that store two's-complement 12-bit values as unsigned with a near-zero intercept.
- :func:`window_channels`: HU -> an ``(H, W, C)`` 8-bit image, one CT window per channel
  (:data:`CT_WINDOWS`; brain, subdural and soft-tissue by default).
- :func:`group_series`, :func:`order_series`, :func:`neighbours`: slices -> series ordered along
  ``z`` and the adjacent slices of each (2.5-D inputs).

Bad files raise the :class:`~medpipe.io.dicom.DicomError` classes of :mod:`medpipe.io.dicom`, whose
``kind`` a converter writes as the skip reason. pydicom is imported on first use.

Example:
    >>> import numpy as np
    >>> rows = write_ct_series("/tmp/ct", np.zeros((3, 8, 8), np.float32), patient_id="P1",
    ...                        study_uid="1.2.3", series_uid="1.2.3.4")  # doctest: +SKIP
    >>> heads = order_series([read_ct_header(r["path"]) for r in rows])  # doctest: +SKIP
    >>> hu, head = read_ct_hu(rows[0]["path"])  # doctest: +SKIP
    >>> window_channels(hu).shape  # doctest: +SKIP
    (8, 8, 3)
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medpipe.io.ct import window_to_uint8
from medpipe.io.dicom import (
    DicomCodecError,
    DicomDecodeError,
    DicomModalityError,
    DicomMultiFrameError,
    DicomNoPixelDataError,
    DicomReadError,
    DicomTruncatedError,
    DicomUnsupportedError,
    _first,
    _float,
)

#: named CT windows, ``(level, width)`` in HU
CT_WINDOWS = {"brain": (40.0, 80.0), "subdural": (80.0, 200.0), "soft_tissue": (40.0, 380.0)}
#: the channels :func:`window_channels` stacks by default (R, G, B)
DEFAULT_CHANNELS = ("brain", "subdural", "soft_tissue")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: encodings :func:`write_ct_series` can write besides the normal one (signed 16 bit, intercept -1024):
#: ``unsigned12``: a valid unsigned 12-bit encoding (intercept -1024); ``bits12_wrapped``: the known bad
#: encoding of some RSNA files (HU stored as 12-bit two's complement but declared unsigned, intercept 0)
QUIRKS = ("unsigned12", "bits12_wrapped")
#: the bad-encoding test of :func:`needs_bits12_fix`: intercepts above this with unsigned 12-bit data
BITS12_INTERCEPT_LIMIT = -100.0
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


# ---------------------------------------------------------------------------------------------- writing


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["medpipe-ct-dicom", *map(str, parts)])


def _ds_number(v: float) -> str:
    """A DS value (at most 16 characters)."""
    s = f"{float(v):.6g}"
    return s if len(s) <= 16 else f"{float(v):.8e}"[:16]


def _encode(hu: np.ndarray, quirk: str | None) -> tuple[np.ndarray, dict]:
    """Stored values and the header elements of their encoding."""
    h = np.rint(np.asarray(hu, np.float64))
    if quirk is None:
        return np.clip(h + 1024, -32768, 32767).astype("<i2"), {
            "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 1, "RescaleIntercept": "-1024"}
    if quirk == "unsigned12":
        return np.clip(h + 1024, 0, 4095).astype("<u2"), {
            "BitsStored": 12, "HighBit": 11, "PixelRepresentation": 0, "RescaleIntercept": "-1024"}
    if quirk == "bits12_wrapped":
        # what the fix undoes: HU as 12-bit two's complement (air -1000 -> 3096), declared unsigned, intercept 0
        s = np.mod(np.clip(h, -1000, 3095), 4096)
        return s.astype("<u2"), {"BitsStored": 12, "HighBit": 11, "PixelRepresentation": 0, "RescaleIntercept": "0"}
    raise ValueError(f"quirk {quirk!r}: expected None or one of {', '.join(QUIRKS)}")


def write_ct_series(folder, hu, *, patient_id: str, study_uid: str, series_uid: str,
                    spacing: Sequence[float] = (5.0, 0.5, 0.5), series_description: str = "",
                    windows: Sequence[Sequence[float]] = ((40, 80),), kernel: str = "STANDARD",
                    file_names: Sequence[str] | None = None, sop_uids: Sequence[str] | None = None,
                    quirk: str | None = None, modality: str = "CT", z_offset: float = 0.0) -> list[dict]:
    """Write a HU volume as one single-frame CT DICOM per axial slice.

    Slice ``i`` lies at ``z = z_offset + i * spacing[0]`` (``ImagePositionPatient``; orientation
    ``[1, 0, 0, 0, 1, 0]``, so ``z`` grows with the slice index), centred in x and y.

    Args:
        folder: where the files go (created).
        hu: float array ``(Z, Y, X)`` in HU.
        patient_id, study_uid, series_uid: ``PatientID``, ``StudyInstanceUID``, ``SeriesInstanceUID``
            (any string; a dataset that uses non-UID identifiers such as ``ID_1a2b3c`` may pass them).
        spacing: ``(slice, row, column)`` spacing in mm (``SliceThickness``, ``PixelSpacing``).
        series_description, kernel: ``SeriesDescription``, ``ConvolutionKernel``.
        windows: VOI windows ``(center, width)``; several become multi-valued ``WindowCenter`` /
            ``WindowWidth`` elements.
        file_names: a file name per slice (default ``<SOPInstanceUID>.dcm``).
        sop_uids: a ``SOPInstanceUID`` per slice (default: derived from ``series_uid``).
        quirk: None (signed 16 bit, intercept -1024), ``"unsigned12"`` or ``"bits12_wrapped"`` (see
            :data:`QUIRKS`; undone by :func:`read_ct_hu`).
        modality: ``Modality`` (``CT``; another value writes a file :func:`read_ct_hu` refuses).
        z_offset: ``z`` of the first slice in mm.

    Returns:
        Per slice ``{"path", "sop_uid", "z", "instance"}`` (``instance`` = ``InstanceNumber`` = i + 1).
    """
    import warnings

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    vol = np.asarray(hu, np.float32)
    if vol.ndim != 3:
        raise ValueError(f"write_ct_series: hu must be (Z, Y, X), got shape {vol.shape}")
    n, rows, cols = vol.shape
    if file_names is not None and len(file_names) != n:
        raise ValueError(f"write_ct_series: {len(file_names)} file names for {n} slices")
    if sop_uids is not None and len(sop_uids) != n:
        raise ValueError(f"write_ct_series: {len(sop_uids)} SOP instance UIDs for {n} slices")
    windows = [tuple(float(x) for x in w) for w in windows]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dz, dy, dx = (float(s) for s in spacing)
    frame_uid = _uid(series_uid, "frame")
    stored, enc = _encode(vol, quirk)
    out = []
    with warnings.catch_warnings():  # non-UID identifiers (ID_...) are written as given
        warnings.simplefilter("ignore")
        for i in range(n):
            sop = sop_uids[i] if sop_uids is not None else _uid(series_uid, i)
            z = float(z_offset) + i * dz
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = sop
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop
            ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "", "", "", ""
            ds.Modality = modality
            ds.SeriesDescription = series_description
            ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_id, patient_id, "", ""
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = "", "1", str(i + 1), "1"
            ds.SliceThickness, ds.KVP = _ds_number(dz), "120"
            ds.ConvolutionKernel = kernel
            ds.ImagePositionPatient = [_ds_number(-cols * dx / 2), _ds_number(-rows * dy / 2), _ds_number(z)]
            ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
            ds.SliceLocation = _ds_number(z)
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows, ds.Columns = rows, cols
            ds.PixelSpacing = [_ds_number(dy), _ds_number(dx)]
            ds.BitsAllocated = 16
            ds.BitsStored, ds.HighBit = enc["BitsStored"], enc["HighBit"]
            ds.PixelRepresentation = enc["PixelRepresentation"]
            if windows:
                centers, widths = [_ds_number(w[0]) for w in windows], [_ds_number(w[1]) for w in windows]
                ds.WindowCenter = centers if len(windows) > 1 else centers[0]
                ds.WindowWidth = widths if len(windows) > 1 else widths[0]
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = enc["RescaleIntercept"], "1", "HU"
            ds.PixelData = stored[i].tobytes()
            ds["PixelData"].VR = "OW"
            name = file_names[i] if file_names is not None else f"{sop}.dcm"
            path = folder / name
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            path.write_bytes(buf.getvalue())
            out.append({"path": str(path), "sop_uid": sop, "z": z, "instance": i + 1})
    return out


# ---------------------------------------------------------------------------------------------- reading


def _floats(v, n: int) -> list[float] | None:
    if v is None or isinstance(v, (str, bytes)):
        return None
    try:
        vals = [float(x) for x in v]
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n and all(math.isfinite(x) for x in vals) else None


def _int(v) -> int | None:
    try:
        return int(_first(v)) if v is not None and str(v).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _text(v) -> str | None:
    v = _first(v) if v is not None and not isinstance(v, str) else v
    s = str(v).strip() if v is not None else ""
    return s or None


def slice_z(position, orientation) -> float | None:
    """A slice's position along its normal: ``ImagePositionPatient`` projected on ``row x column``.

    Falls back to ``position[2]`` when the orientation is missing or degenerate; None without a position.

    Example:
        >>> slice_z([-125.0, -128.1, 103.02], [1, 0, 0, 0, 1, 0]), slice_z([0, 0, 7.5], None), slice_z(None, None)
        (103.02, 7.5, None)
    """
    if position is None:
        return None
    if orientation is not None:
        r, c = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
        nrm = np.cross(r, c)
        length = float(np.linalg.norm(nrm))
        if length > 1e-6:
            return round(float(np.dot(np.asarray(position, float), nrm / length)), 4)
    return round(float(position[2]), 4)


def ct_header(ds) -> dict:
    """The header facts of a parsed CT slice (see :func:`read_ct_header`)."""
    position = _floats(ds.get("ImagePositionPatient"), 3)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    slope, intercept = _float(ds.get("RescaleSlope")), _float(ds.get("RescaleIntercept"))
    return {
        "patient": _text(ds.get("PatientID")), "study": _text(ds.get("StudyInstanceUID")),
        "series": _text(ds.get("SeriesInstanceUID")), "sop": _text(ds.get("SOPInstanceUID")),
        "z": slice_z(position, orientation), "position": position, "orientation": orientation,
        "pixel_spacing": spacing, "slice_thickness": _float(ds.get("SliceThickness")),
        "window_center": _float(ds.get("WindowCenter")), "window_width": _float(ds.get("WindowWidth")),
        "windows_in_header": len(ds.get("WindowCenter")) if _is_multi(ds.get("WindowCenter")) else
        int(ds.get("WindowCenter") is not None),
        "rescale_slope": 1.0 if slope is None else slope, "rescale_intercept": 0.0 if intercept is None else intercept,
        "bits_allocated": _int(ds.get("BitsAllocated")), "bits_stored": _int(ds.get("BitsStored")),
        "pixel_representation": _int(ds.get("PixelRepresentation")) or 0,
        "photometric": _text(ds.get("PhotometricInterpretation")),
        "modality": (_text(ds.get("Modality")) or "").upper() or None,
        "series_description": _text(ds.get("SeriesDescription")), "kernel": _text(ds.get("ConvolutionKernel")),
        "instance": _int(ds.get("InstanceNumber")), "rows": _int(ds.get("Rows")), "columns": _int(ds.get("Columns")),
        "frames": _int(ds.get("NumberOfFrames")) or 1,
        "transfer_syntax": str(ts) if ts else None,
        "compressed": bool(ts is not None and getattr(ts, "is_compressed", False)),
    }


def _is_multi(v) -> bool:
    return v is not None and not isinstance(v, (str, bytes, int, float)) and hasattr(v, "__len__")


def read_ct_header(path: str | os.PathLike) -> dict:
    """The header of one CT slice, read without its pixel data.

    Returns:
        ``patient`` (PatientID), ``study``, ``series``, ``sop`` (the instance UIDs), ``z`` (see
        :func:`slice_z`; None without ``ImagePositionPatient``), ``position``, ``orientation``,
        ``pixel_spacing`` (``[row, column]`` mm), ``slice_thickness``, ``window_center`` /
        ``window_width`` (the first value of a multi-valued element, as floats), ``windows_in_header``
        (how many values it held), ``rescale_slope`` / ``rescale_intercept`` (1 and 0 when absent),
        ``bits_allocated``, ``bits_stored``, ``pixel_representation``, ``photometric``, ``modality``,
        ``series_description``, ``kernel``, ``instance`` (InstanceNumber), ``rows``, ``columns``,
        ``frames``, ``transfer_syntax``, ``compressed``; each None when absent.

    Raises:
        DicomReadError: the file cannot be read, is not a DICOM, or its header is damaged or cut short.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medpipe.io.dicom import _quiet_pydicom

    p = str(path)
    with _quiet_pydicom():
        try:
            if os.path.getsize(p) == 0:
                raise DicomReadError(p, "the file is empty", "Download it again")
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
            except InvalidDicomError:  # no preamble/"DICM": read once more without it
                ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
                if "Rows" not in ds and "SOPClassUID" not in ds:
                    raise DicomReadError(p, "not a DICOM file (no DICM marker and no image elements)",
                                         "Remove it, or replace it with the DICOM it should be") from None
        except DicomReadError:
            raise
        except OSError as e:
            raise DicomReadError(p, f"cannot be read ({e.strerror or e})") from None
        except Exception as e:  # noqa: BLE001 - pydicom raises many types for a damaged header
            raise DicomReadError(p, f"the DICOM header cannot be parsed ({type(e).__name__}: {e})",
                                 "The file is damaged or cut short; download it again") from None
        _check_has_elements(ds, p)
        return ct_header(ds)


def _check_has_elements(ds, p: str) -> None:
    """A file that ends inside its file meta header parses as an empty dataset: refuse it by name."""
    if len(ds) == 0:
        raise DicomReadError(p, "no data elements after the file meta header (the file is cut short or damaged)",
                             "Download or copy it again")


def needs_bits12_fix(head: dict) -> bool:
    """The known bad 12-bit encoding: unsigned 12-bit data with an intercept above -100 (instead of ~-1024).

    Example:
        >>> needs_bits12_fix({"bits_stored": 12, "pixel_representation": 0, "rescale_intercept": 0.0})
        True
        >>> needs_bits12_fix({"bits_stored": 12, "pixel_representation": 0, "rescale_intercept": -1024.0})
        False
    """
    return (head.get("bits_stored") == 12 and not head.get("pixel_representation")
            and head.get("rescale_intercept") is not None and head["rescale_intercept"] > BITS12_INTERCEPT_LIMIT)


def fix_bits12(stored: np.ndarray) -> np.ndarray:
    """Undo the bad 12-bit encoding: ``v = stored + 1000``, wrapped at 4096; HU = ``v * slope - 1000``.

    The fix of the RSNA Intracranial Hemorrhage challenge's winning solutions: such files hold HU
    as 12-bit two's complement, so air (-1000) reads 3096 and the brain looks right.

    Example:
        >>> fix_bits12(np.array([3096, 0, 40, 1000])).tolist()  # + intercept -1000: -1000, 0, 40, 1000 HU
        [0, 1000, 1040, 2000]
    """
    v = np.asarray(stored).astype(np.int32) + 1000
    v[v >= 4096] -= 4096
    return v


def read_ct_hu(source) -> tuple[np.ndarray, dict]:
    """One CT slice in Hounsfield units and its header.

    Args:
        source: a path, or a dataset already parsed by pydicom (with its pixel data).

    Returns:
        ``(hu, head)``: ``float32`` ``[rows, columns]`` (the bad 12-bit encoding fixed, see
        :func:`fix_bits12`, then ``RescaleSlope``/``RescaleIntercept`` applied) and the
        :func:`read_ct_header` facts plus ``fixed_bits12`` (True when the fix was applied; the header's
        intercept is then reported as ``rescale_intercept_written`` and -1000 is used).

    Raises:
        DicomReadError, DicomTruncatedError, DicomNoPixelDataError, DicomCodecError, DicomDecodeError,
        DicomModalityError (not CT), DicomMultiFrameError, DicomUnsupportedError: each names the
        file, what is wrong and what to do.
    """
    from pydicom.dataset import Dataset

    from medpipe.io.dicom import _parse, _quiet_pydicom

    with _quiet_pydicom():
        data = None
        if isinstance(source, Dataset):
            ds, p = source, str(getattr(source, "filename", None) or "<dataset>")
        else:
            p = str(source)
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise DicomReadError(p, f"cannot be read ({e.strerror or e})") from None
            if not data:
                raise DicomReadError(p, "the file is empty", "Download it again")
            ds = _parse(data, p)
        return _hu(ds, p, data)


def _hu(ds, p: str, data: bytes | None) -> tuple[np.ndarray, dict]:
    _check_has_elements(ds, p)
    head = ct_header(ds)
    if head["modality"] is not None and head["modality"] != "CT":
        raise DicomModalityError(p, f"modality {head['modality']} (expected CT)",
                                 "It is not a CT slice; remove it from the folder")
    if head["frames"] > 1:
        raise DicomMultiFrameError(p, f"{head['frames']} frames (NumberOfFrames); expected one axial slice",
                                   "Export the series as single-frame slices")
    if "PixelData" not in ds:
        if data is not None and _PIXEL_DATA_TAG in data:
            raise DicomTruncatedError(p, f"the file ends inside its pixel data ({len(data)} bytes; truncated)",
                                      "Download or copy it again")
        raise DicomNoPixelDataError(p, "no pixel data (a DICOM object without an image)", "Remove it from the folder")
    if not head["rows"] or not head["columns"]:
        raise DicomReadError(p, "no Rows/Columns in the header", "The file is damaged; download it again")
    if head["compressed"]:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(head["transfer_syntax"])
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            need = "; ".join(decoder.missing_dependencies if decoder is not None else [])
            raise DicomCodecError(p, f"pixel data compressed as {head['transfer_syntax']}, and no decoder for it is "
                                     f"installed", f"Install a decoder ({need})" if need else
                                  "Convert the file to an uncompressed transfer syntax")
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        if "less than expected" in str(e) or "shorter" in str(e):
            raise DicomTruncatedError(p, "the pixel data is shorter than Rows x Columns x BitsAllocated say; "
                                         "truncated", "Download or copy it again") from None
        detail = " ".join(str(e).split())[:240]
        raise DicomDecodeError(p, f"the pixel data does not decode ({detail})",
                               "The file is damaged; download it again") from None
    if arr.ndim != 2:
        raise DicomUnsupportedError(p, f"pixel array of shape {tuple(arr.shape)}; expected one 2-D slice")
    head["fixed_bits12"] = needs_bits12_fix(head)
    intercept = head["rescale_intercept"]
    if head["fixed_bits12"]:
        head["rescale_intercept_written"] = intercept
        arr, intercept = fix_bits12(arr), -1000.0
    hu = arr.astype(np.float32) * np.float32(head["rescale_slope"]) + np.float32(intercept)
    return hu, head


# ---------------------------------------------------------------------------------------------- windows


def window_channels(hu, channels: Sequence[str] = DEFAULT_CHANNELS, windows: dict = CT_WINDOWS) -> np.ndarray:
    """A HU slice as an 8-bit ``(H, W, C)`` image, channel ``c`` windowed with ``windows[channels[c]]``.

    Example:
        >>> window_channels(np.array([[40.0]])).tolist()  # brain, subdural, soft tissue windows
        [[[128, 76, 128]]]
    """
    unknown = [c for c in channels if c not in windows]
    if unknown:
        raise ValueError(f"window channel {unknown[0]!r}: expected one of {', '.join(windows)}")
    hu = np.asarray(hu, np.float32)
    return np.stack([window_to_uint8(hu, windows[c]) for c in channels], axis=-1)


# ---------------------------------------------------------------------------------------------- series


def group_series(headers: Sequence[dict]) -> dict[str, list[dict]]:
    """Headers by ``series`` (SeriesInstanceUID; ``""`` when absent), each list in the given order."""
    out: dict[str, list[dict]] = {}
    for h in headers:
        out.setdefault(h.get("series") or "", []).append(h)
    return out


def order_series(headers: Sequence[dict]) -> list[dict]:
    """The slices of one series in ascending ``z``; by ``instance`` when a slice has no ``z``; stable.

    Example:
        >>> [h["z"] for h in order_series([{"z": 5.0, "instance": 1}, {"z": -5.0, "instance": 3},
        ...                                {"z": 0.0, "instance": 2}])]
        [-5.0, 0.0, 5.0]
        >>> [h["instance"] for h in order_series([{"z": None, "instance": 2}, {"z": 1.0, "instance": 1}])]
        [1, 2]
    """
    headers = list(headers)
    if all(h.get("z") is not None for h in headers):
        return sorted(headers, key=lambda h: (h["z"], h.get("instance") if h.get("instance") is not None else 0))
    return sorted(headers, key=lambda h: (h.get("instance") is None, h.get("instance") or 0))


def neighbours(ordered: Sequence, i: int) -> tuple[int, int]:
    """``(previous, next)`` indices of slice ``i`` in an ordered series, clamped at its ends.

    Example:
        >>> neighbours("abc", 0), neighbours("abc", 1), neighbours("abc", 2), neighbours("a", 0)
        ((0, 1), (0, 2), (1, 2), (0, 0))
    """
    n = len(ordered)
    if not 0 <= i < n:
        raise IndexError(f"slice {i} of a series of {n}")
    return max(i - 1, 0), min(i + 1, n - 1)
