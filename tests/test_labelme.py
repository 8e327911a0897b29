"""LabelMe reader/writer: round trips of every shape type, and problems reported, not dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scintilab.errors import InputError
from scintilab.labelme import is_lesion, read_labelme, view_from_name, write_labelme
from scintilab.study import Shape

HW = (256, 64)


def _shapes(view: str = "POST") -> list[Shape]:
    return [
        Shape(
            "lesion:patchy:ribs",
            np.array([[10.5, 20.0], [20.0, 22.5], [15.0, 30.25]]),
            "polygon",
            view,
            {"group_id": 2, "flags": {"new": True}, "region": "ribs"},
        ),
        Shape("lesion:strip:pelvis", np.array([[5.0, 100.0], [12.0, 140.0]]), "rectangle", view),
        Shape(
            "benign:arthritis:lower_limbs",
            np.array([[30.0, 200.0], [33.0, 204.0]]),
            "circle",
            view,
            {"description": "knee"},
        ),
        Shape("lesion:punctate:skull", np.array([[32.0, 8.0]]), "point", view),
    ]


def test_round_trip_keeps_every_shape_type_label_point_and_attribute(tmp_path: Path) -> None:
    original = _shapes()
    path = tmp_path / "study_POST.json"
    write_labelme(path, original, image_path="study.dcm", image_hw=HW)
    shapes, problems = read_labelme(path, image_hw=HW)
    assert problems == []
    assert len(shapes) == len(original)
    for got, want in zip(shapes, original):
        assert got.label == want.label
        assert got.shape_type == want.shape_type
        assert got.view == "POST"  # from the file name
        np.testing.assert_allclose(got.points, want.points)
        assert got.attributes == want.attributes


def test_written_file_is_plain_labelme(tmp_path: Path) -> None:
    path = tmp_path / "a_ANT.json"
    write_labelme(path, _shapes("ANT"), image_path="a.dcm", image_hw=HW)
    doc = json.loads(path.read_text())
    assert (doc["imageHeight"], doc["imageWidth"]) == HW
    assert doc["imagePath"] == "a.dcm" and doc["imageData"] is None
    assert [s["shape_type"] for s in doc["shapes"]] == ["polygon", "rectangle", "circle", "point"]
    assert all({"label", "points", "group_id", "shape_type", "flags"} <= set(s) for s in doc["shapes"])


def test_view_comes_from_argument_file_name_or_image_path(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    write_labelme(path, _shapes("ANT")[:1], image_path="x_POST.png", image_hw=HW)
    assert read_labelme(path)[0][0].view == "POST"
    assert read_labelme(path, view="ANT")[0][0].view == "ANT"
    assert view_from_name("case_12_ANT.json") == "ANT"
    assert view_from_name("case_12.json") is None


def test_unnamed_view_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    write_labelme(path, _shapes()[:1], image_path="image.dcm", image_hw=HW)
    shapes, problems = read_labelme(path)
    assert shapes[0].view == "ANT"
    assert any("view not named" in p for p in problems)


def _raw(tmp_path: Path, shapes: list[dict], hw: tuple[int, int] = HW) -> Path:
    path = tmp_path / "raw_ANT.json"
    path.write_text(
        json.dumps(
            {"shapes": shapes, "imagePath": "raw.dcm", "imageHeight": hw[0], "imageWidth": hw[1], "imageData": None}
        )
    )
    return path


@pytest.mark.parametrize(
    "shape, reason",
    [
        ({"label": "lesion", "points": [[1, 1], [5, 5], [9, 9]], "shape_type": "polygon"}, "zero area"),
        ({"label": "lesion", "points": [[1, 1], [5, 5]], "shape_type": "polygon"}, "needs 3"),
        ({"label": "lesion", "points": [[1, 1], [1, 9]], "shape_type": "rectangle"}, "zero width"),
        ({"label": "lesion", "points": [[4, 4], [4, 4]], "shape_type": "circle"}, "zero radius"),
        ({"label": "lesion", "points": [[400, 900], [410, 950]], "shape_type": "rectangle"}, "wholly outside"),
        ({"label": "lesion", "points": [[1, 1], [5, 5]], "shape_type": "linestrip"}, "unsupported shape type"),
        ({"label": "lesion", "points": "nonsense", "shape_type": "polygon"}, "not (x, y) pairs"),
    ],
)
def test_bad_shape_is_left_out_and_reported(tmp_path: Path, shape: dict, reason: str) -> None:
    good = {"label": "lesion:patchy:ribs", "points": [[10, 10], [20, 10], [15, 20]], "shape_type": "polygon"}
    shapes, problems = read_labelme(_raw(tmp_path, [good, shape]), image_hw=HW)
    assert [s.label for s in shapes] == ["lesion:patchy:ribs"]
    assert len(problems) == 1 and reason in problems[0] and "shape 1" in problems[0]


def test_shape_crossing_the_border_is_kept_and_reported(tmp_path: Path) -> None:
    shape = {"label": "lesion", "points": [[60, 250], [70, 260]], "shape_type": "rectangle"}
    shapes, problems = read_labelme(_raw(tmp_path, [shape]), image_hw=HW)
    assert len(shapes) == 1
    assert problems and "extends outside" in problems[0]


def test_size_mismatch_with_the_dicom_is_reported(tmp_path: Path) -> None:
    shape = {"label": "lesion", "points": [[10, 10], [20, 10], [15, 20]], "shape_type": "polygon"}
    _, problems = read_labelme(_raw(tmp_path, [shape], hw=(1024, 256)), image_hw=HW)
    assert any("size mismatch" in p and "1024x256" in p for p in problems)
    _, problems = read_labelme(_raw(tmp_path, [shape], hw=HW), image_hw=HW)
    assert problems == []


def test_unreadable_or_foreign_json_raises_input_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken_ANT.json"
    broken.write_text('{"shapes": [')
    with pytest.raises(InputError, match="broken_ANT.json.*not valid JSON"):
        read_labelme(broken)
    foreign = tmp_path / "foreign_ANT.json"
    foreign.write_text('{"annotations": []}')
    with pytest.raises(InputError, match="not a LabelMe annotation"):
        read_labelme(foreign)
    with pytest.raises(InputError, match="not found"):
        read_labelme(tmp_path / "missing_ANT.json")


def test_writer_rejects_unknown_shape_types(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported shape type"):
        write_labelme(tmp_path / "x.json", [Shape("a", np.zeros((2, 2)), "line")], image_path="x", image_hw=HW)


def test_is_lesion() -> None:
    assert is_lesion(Shape("lesion:patchy:ribs", np.zeros((1, 2))))
    assert is_lesion(Shape("lesion", np.zeros((1, 2))))
    assert not is_lesion(Shape("benign:fracture:ribs", np.zeros((1, 2))))
