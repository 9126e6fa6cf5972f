"""data/clipart/parts.json, the hand-annotated face parts of the chapter "§4.3 Correspondence": every point lies on
its drawing, and the part squares the chapter draws around them never overlap, whatever tilt and size a render gives.
"""
import itertools
import json
import math

import pytest
import torch

from zfviz import data

PARTS = data.verify("clipart/parts.json")
ANNOTATION = json.loads(PARTS.read_text())
DRAWINGS = ANNOTATION["drawings"]
TILES, META = data._read_atlas(data.ClipArt.sprite_file, None)      # (M, 4, T, T) uint8, the atlas description
SOURCES = [item["source"] for item in META["items"]]


def _tile(drawing):
    return TILES[SOURCES.index(drawing["source"])]


def test_the_annotation_says_what_it_is_and_names_the_papers_parts():
    assert "by hand" in ANNOTATION["comment"] and "(u, v)" in ANNOTATION["coordinates"]
    assert list(ANNOTATION["parts"]) == ["right eye", "left eye", "nose"]          # Table 1's rows
    assert 0 < ANNOTATION["square_side"]["fraction"] < 1
    assert 5 <= len(DRAWINGS) <= 8 and len({d["source"] for d in DRAWINGS}) == len(DRAWINGS)   # different drawings


@pytest.mark.parametrize("drawing", DRAWINGS, ids=lambda d: d["what"])
def test_each_drawing_is_a_mammal_of_the_split_it_names(drawing):
    assert drawing["source"] in SOURCES, f"{drawing['source']} is not in the clip-art atlas"
    item = META["items"][SOURCES.index(drawing["source"])]
    assert item.get("split", "train") == drawing["split"]
    assert META["classes"][item["label"]] == "mammal"


@pytest.mark.parametrize("drawing", DRAWINGS, ids=lambda d: d["what"])
def test_each_point_lies_on_opaque_pixels_of_its_drawing(drawing):
    alpha = _tile(drawing)[3]                                                  # (T, T)
    t = alpha.shape[0]
    for part in ANNOTATION["parts"]:
        u, v = drawing[part]
        assert 0 <= u <= 1 and 0 <= v <= 1, f"{drawing['what']} {part}: ({u}, {v}) lies outside the tile"
        col, row = min(int(u * t), t - 1), min(int(v * t), t - 1)
        near = alpha[max(row - 2, 0):row + 3, max(col - 2, 0):col + 3]         # within 2 pixels
        assert (near > 127).any(), f"{drawing['what']} {part}: ({u}, {v}) is not on the drawing"
        assert int(alpha[row, col]) > 127, f"{drawing['what']} {part}: ({u}, {v}) is on a transparent pixel"


@pytest.mark.parametrize("drawing", DRAWINGS, ids=lambda d: d["what"])
def test_the_part_squares_never_overlap_at_any_tilt_and_size(drawing):
    """The chapter's squares: centred on the located points, side = fraction x the eyes' distance in the render,
    corners rounded to pixels. Two squares are apart when the larger of |dx|, |dy| between their centres is at
    least the side; rounding to pixels can take back up to 1.5 pixels. A render tilts the drawing by up to
    ClipArt.max_angle (either way, mirrored or not) and scales its tile to at least min_scale x input_size pixels."""
    fraction = ANNOTATION["square_side"]["fraction"]
    points = {part: drawing[part] for part in ANNOTATION["parts"]}
    eyes = math.dist(points["right eye"], points["left eye"])
    smallest_tile = data.ClipArt.min_scale * data.TEACHING_INPUT_SIZE                # pixels
    max_degrees = math.degrees(data.ClipArt.max_angle)
    for degrees in torch.linspace(-max_degrees, max_degrees, 401).tolist():
        a = math.radians(degrees)
        for (p, (pu, pv)), (q, (qu, qv)) in itertools.combinations(points.items(), 2):
            du, dv = pu - qu, pv - qv
            apart = max(abs(math.cos(a) * du - math.sin(a) * dv), abs(math.sin(a) * du + math.cos(a) * dv))
            gap_px = (apart - fraction * eyes) * smallest_tile    # px per tile unit grows with the scale: worst case
            assert gap_px >= 1.5, (f"{drawing['what']}: the {p} and {q} squares come within {gap_px:.2f} px of "
                                   f"overlapping at a tilt of {degrees:.1f} degrees")


def test_the_chapter_squares_do_not_overlap_in_the_test_renders():
    """The same rule applied to real renders (the test split, 5 renders as the chapter uses)."""
    test = data.ClipArt("test", renders=5)
    fraction = ANNOTATION["square_side"]["fraction"]
    for drawing in (d for d in DRAWINGS if d["split"] == "test"):
        k = test.sprite_sources.index(drawing["source"])
        uv = torch.tensor([drawing[p] for p in ANNOTATION["parts"]])
        for r in range(test.renders):
            index = r * len(test.sprites) + k
            centres = test.locate(torch.full((3,), index), uv)                            # (3, 2) pixels
            side = round(fraction * float((centres[0] - centres[1]).norm()))
            corner = (centres - side / 2).round().long()
            boxes = torch.cat([corner, corner + side], 1)                                 # (3, 4) x0, y0, x1, y1
            for a, b in itertools.combinations(boxes.tolist(), 2):
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (drawing["what"], r, a, b)
