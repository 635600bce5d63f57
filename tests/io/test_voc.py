import pytest

from medpipe.io.voc import VOCError, parse_voc
from tests.conftest import SHARED_PHE, voc_xml


def test_box_and_size():
    ann = parse_voc(voc_xml("0004_15.jpg", (164, 114, 285, 184), 512).encode())
    assert ann.filename == "0004_15.jpg"
    assert (ann.width, ann.height) == (512, 512)
    assert [(o.name, o.box) for o in ann.objects] == [("a", [164.0, 114.0, 285.0, 184.0])]


def test_no_object_has_no_size():
    ann = parse_voc(voc_xml("0141_06.jpg").encode())
    assert ann.objects == [] and ann.width is None and ann.height is None


@pytest.mark.parametrize("text,match", [
    ("<annotation><object>", "not well-formed"),
    ("<notvoc/>", "expected <annotation>"),
    ("<annotation><object><name>a</name></object></annotation>", "without <bndbox>"),
    ("<annotation><object><bndbox><xmin>x</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object></annotation>",
     "not a number"),
    ("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>", "has no <ymin>"),
])
def test_malformed(text, match):
    with pytest.raises(VOCError, match=match):
        parse_voc(text.encode())


def test_malformed_file_named(tmp_path):
    p = tmp_path / "bad.xml"
    p.write_text("<annotation>")
    with pytest.raises(VOCError, match="bad.xml"):
        parse_voc(p)


def test_real_files():
    xml = SHARED_PHE / "SubdatasetC_PNG/annotation/annotation4/0004_15.xml"
    if not xml.exists():
        pytest.skip(f"real sample not found at {SHARED_PHE}")
    ann = parse_voc(xml)
    assert ann.objects[0].box == [164.0, 114.0, 285.0, 184.0] and ann.objects[0].name == "a"
    neg = parse_voc(SHARED_PHE / "SubdatasetC_PNG/annotation/annotation141/0141_06.xml")
    assert neg.objects == [] and neg.width is None
    assert parse_voc(SHARED_PHE / "SubdatasetC_PNG/annotation/annotation25/0025_03.xml").filename == "3.png"
