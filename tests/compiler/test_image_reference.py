"""compiler/image_reference.py: Docker's reference grammar for the `image:` tag and `base_image`."""

import pytest

from nbscale.compiler.image_reference import image_problem


@pytest.mark.parametrize("ref", ["python:3.11-slim", "ghcr.io/org/app:1.2", "registry:5000/team/img",
                                 "localhost/a_b:V1_x", "[::1]:5000/img:t", "img@sha256:" + "a" * 64])
def test_references_docker_takes_are_accepted(ref):
    assert image_problem(ref) is None


@pytest.mark.parametrize("ref", ["python:３", "python:café", "python:slim١", "pythön:3", "regístry.io/img:1",
                                 "python:_٣", "img@sha256:" + "٣" * 64, "python:3\n"])
def test_non_ascii_anywhere_in_a_reference_is_refused(ref):
    # Docker's grammar is ASCII only; Python's Unicode-aware \w let a tag like `３` through
    assert image_problem(ref).startswith("not an image reference")
