"""The DAG as SVG: layers, no overlapping boxes at 20 steps, labels escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from nbscale.graph_svg import BOX_H, BOX_W, layers, positions, svg


def test_layers_follow_the_edges():
    after = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert layers(list(after), after) == {"a": 0, "b": 1, "c": 1, "d": 2}


def test_twenty_steps_have_boxes_of_full_size_that_never_overlap():
    names = [f"step_{i:02d}" for i in range(20)]
    after = {n: ([names[0]] if 0 < i < 15 else [names[i - 1]] if i else []) for i, n in enumerate(names)}
    places = positions(names, after)
    boxes = sorted(places.values())
    for i, (x, y) in enumerate(boxes):
        for x2, y2 in boxes[i + 1:]:
            assert abs(x - x2) >= BOX_W or abs(y - y2) >= BOX_H
    root = ET.fromstring(svg(names, after))  # well-formed XML
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert labels == names


def test_labels_are_escaped_and_shortened():
    hostile = "<img src=x onerror=alert(1)>" * 2
    picture = svg([hostile], {hostile: []}, {hostile: "failed"})
    assert "<img" not in picture and "&lt;img" in picture and "…" in picture
    ET.fromstring(picture)
