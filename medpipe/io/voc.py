"""Pascal VOC annotation parsing (the format of PHE-SICH-CT-IDS boxes)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


class VOCError(ValueError):
    """A VOC file that cannot be read (not XML, or a box with non-numeric coordinates)."""


@dataclass
class VOCObject:
    """One ``<object>``: class name and box in pixels, ``[xmin, ymin, xmax, ymax]``."""

    name: str
    box: list[float]


@dataclass
class VOCAnnotation:
    """A parsed VOC file. ``width``/``height`` are None when ``<size>`` is absent."""

    filename: str | None
    width: int | None
    height: int | None
    objects: list[VOCObject] = field(default_factory=list)


def _num(node, tag: str, path: str) -> float:
    el = node.find(tag)
    if el is None or el.text is None:
        raise VOCError(f"{path}: <bndbox> has no <{tag}>")
    try:
        return float(el.text.strip())
    except ValueError as e:
        raise VOCError(f"{path}: <{tag}> is not a number: {el.text!r}") from e


def parse_voc(source: str | Path | bytes) -> VOCAnnotation:
    """Parse a Pascal VOC XML file.

    Args:
        source: path to the XML file, or its bytes.

    Returns:
        The annotation; files with no ``<object>`` (and, in PHE-SICH-CT-IDS, then no ``<size>``)
        give an empty ``objects`` list.

    Raises:
        VOCError: the file is not well-formed XML or a box is malformed.

    Example:
        >>> ann = parse_voc("annotation4/0004_15.xml")  # doctest: +SKIP
        >>> ann.objects[0].box
        [164.0, 114.0, 285.0, 184.0]
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        root = ET.fromstring(source) if isinstance(source, bytes) else ET.parse(source).getroot()
    except ET.ParseError as e:
        raise VOCError(f"{name}: not well-formed XML ({e})") from e
    if root.tag != "annotation":
        raise VOCError(f"{name}: root element is <{root.tag}>, expected <annotation>")
    fn = root.findtext("filename")
    width = height = None
    size = root.find("size")
    if size is not None:
        try:
            width = int(float(size.findtext("width") or "nan"))
            height = int(float(size.findtext("height") or "nan"))
        except ValueError:
            width = height = None
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise VOCError(f"{name}: <object> without <bndbox>")
        box = [_num(bb, t, name) for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append(VOCObject(name=(obj.findtext("name") or "").strip(), box=box))
    return VOCAnnotation(filename=fn.strip() if fn else None, width=width, height=height, objects=objects)
