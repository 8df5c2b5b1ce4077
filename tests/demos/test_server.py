"""The served app end to end, through gradio_client as any API user would call it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.demos.conftest import STRIPES_PROMPT

gradio_client = pytest.importorskip("gradio_client")

SAMPLING = (4, 5.0, 256)  # DDIM steps, guidance, display size


def client(url: str):
    return gradio_client.Client(url, verbose=False)


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def saved_label(c) -> str:
    """The first saved erasure, as the page's dropdown offers it."""
    info = c.view_api(print_info=False, return_format="dict")
    erased = next(p for p in info["named_endpoints"]["/compare"]["parameters"] if p["parameter_name"] == "erased")
    return erased["parameter_default"]


def test_compare_returns_both_images_and_they_differ_for_the_erased_concept(demo_url):
    c = client(demo_url)
    base, erased, slider, caption = c.predict(STRIPES_PROMPT, 0, saved_label(c), *SAMPLING, api_name="/compare")
    assert pixels(base).shape == pixels(erased).shape == (256, 256, 3)
    assert not np.array_equal(pixels(base), pixels(erased))
    assert [pixels(p).shape for p in slider] == [(256, 256, 3)] * 2
    assert "should be missing on the right" in caption


def test_two_visitors_at_once_both_get_their_answers(demo_url):
    first, second = client(demo_url), client(demo_url)
    jobs = [first.submit(STRIPES_PROMPT, 1, None, *SAMPLING, api_name="/compare"),
            second.submit("A heart image in solid style.", 2, None, *SAMPLING, api_name="/compare")]
    results = [job.result(timeout=120) for job in jobs]
    assert [r[3].split("Prompt ")[1][:15] for r in results] == ['"A star image i', '"A heart image ']
    assert not np.array_equal(pixels(results[0][0]), pixels(results[1][0]))


def test_bad_input_comes_back_as_the_message_not_a_traceback(demo_url):
    with pytest.raises(gradio_client.exceptions.AppError, match="Type a prompt first") as error:
        client(demo_url).predict("  ", 0, None, *SAMPLING, api_name="/compare")
    assert "Traceback" not in str(error.value)


def test_live_erasure_belongs_to_its_session(demo_url):
    mine, theirs = client(demo_url), client(demo_url)
    dropdown, status, prompt, _ = mine.predict("stripes", "esd", 2, "", api_name="/erase")
    label = dropdown["value"]
    assert "Erased **stripes**" in status and prompt == STRIPES_PROMPT and label in [c[0] for c in dropdown["choices"]]
    base, erased, _, _ = mine.predict(STRIPES_PROMPT, 0, label, *SAMPLING, api_name="/compare")
    assert not np.array_equal(pixels(base), pixels(erased))
    with pytest.raises(gradio_client.exceptions.AppError, match="not in the list of choices"):  # Gradio's own check
        theirs.predict(STRIPES_PROMPT, 0, label, *SAMPLING, api_name="/compare")
