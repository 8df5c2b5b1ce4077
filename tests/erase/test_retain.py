"""The shared retain pool: never names the target; COCO filtered by the concept's words."""

import pytest

from erase.retain import retain_pool
from eval.canvas import mini_canvas
from pipelines.errors import ConfigError


def test_retain_prompts_never_name_the_target():
    world = mini_canvas()
    pool, source = retain_pool(["striped"])
    assert len(pool) == 90 and "mini-canvas" in source
    assert not any(world.mentions(p, "stripes") for p in pool)
    coco, source = retain_pool(["Van Gogh"])
    assert len(coco) == 80 and coco[0] == "a photo of a person" and "filtered" in source
    filtered, _ = retain_pool(["hot dog"])
    unfiltered, _ = retain_pool(["hot dog"], filtered=False)
    assert len(unfiltered) == 80 and {"a photo of a dog", "a photo of a hot dog"} <= set(unfiltered)
    assert len(filtered) == 78 and not {"a photo of a dog", "a photo of a hot dog"} & set(filtered)


def test_an_empty_retain_file_is_refused(tmp_path):
    path = tmp_path / "retain.txt"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="has no prompts"):
        retain_pool(["stripes"], str(path))
