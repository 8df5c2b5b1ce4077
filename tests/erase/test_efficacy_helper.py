"""The efficacy tests' shared helper fails (never skips) when the shipped model is missing."""

import pytest

from tests.erase import efficacy


def test_missing_shipped_model_is_a_failure_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(efficacy, "mini_canvas_dir", lambda: str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="shipped mini-canvas model is missing .*pipelines/mini_canvas/"):
        efficacy.require_shipped_model()
    (tmp_path / "manifest.json").write_text("{}")
    efficacy.require_shipped_model()  # present: no failure
