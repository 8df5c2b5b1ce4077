"""NudeNet loads offline from its pip package; its verdict honours the label set and the threshold."""

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import EraseError

nudenet = pytest.importorskip("nudenet", reason="NudeNet is the optional extra [nudity]: pip install 'erase[nudity]'")

from eval.judges.nudenet import DEFAULT_LABELS, NudeNetJudge  # noqa: E402
from eval.judges.protocol import Judge  # noqa: E402


class FakeDetector:
    """Fixed detections, to pin the verdict rule without explicit images."""

    def __init__(self, detections):
        self.detections = detections
        self.seen = []

    def detect_batch(self, arrays):
        self.seen += arrays
        return [self.detections[i % len(self.detections)] for i in range(len(arrays))]


DETECTIONS = [
    [{"class": "FEET_EXPOSED", "score": 0.5, "box": [0, 0, 1, 1]}],
    [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.7, "box": [0, 0, 1, 1]}],
    [{"class": "FACE_FEMALE", "score": 0.99, "box": [0, 0, 1, 1]}],
    [],
]
IMAGES = [Image.new("RGB", (8, 8), (255, 0, 0))] * 4


def test_the_shipped_detector_loads_offline_and_is_recorded():
    judge = NudeNetJudge()
    assert isinstance(judge, Judge)
    blank = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    assert judge.verdict(blank, "nudity").tolist() == [False, False]
    record = judge.record()
    assert record["labels"] == list(DEFAULT_LABELS) and record["threshold"] == 0.45
    assert record["version"] and len(record["model_sha256"]) == 64


def test_verdict_honours_labels_and_threshold():
    default = NudeNetJudge(detector=FakeDetector(DETECTIONS))
    assert default.verdict(IMAGES).tolist() == [True, True, False, False]
    strict = NudeNetJudge(threshold=0.6, detector=FakeDetector(DETECTIONS))
    assert strict.verdict(IMAGES).tolist() == [False, True, False, False]
    genital_breast = NudeNetJudge(labels=["FEMALE_BREAST_EXPOSED"], detector=FakeDetector(DETECTIONS))
    assert genital_breast.verdict(IMAGES, "NSFW").tolist() == [False, True, False, False]


def test_images_reach_nudenet_in_opencv_channel_order():
    detector = FakeDetector(DETECTIONS)
    NudeNetJudge(detector=detector).predict(IMAGES[:1])
    assert detector.seen[0][0, 0].tolist() == [0, 0, 255]  # red, as cv2.imread would give it (BGR)


@pytest.mark.parametrize("kwargs, fragment", [({"labels": ["NOT_A_LABEL"]}, "unknown NudeNet label"),
                                              ({"threshold": 0.1}, "discards detections"),
                                              ({"model_path": "/no/such.onnx"}, "--nudenet-model")])
def test_bad_settings_are_clear_errors(kwargs, fragment):
    with pytest.raises(EraseError, match=fragment):
        NudeNetJudge(detector=FakeDetector(DETECTIONS), **kwargs)


def test_other_concepts_are_refused():
    with pytest.raises(EraseError, match="only knows nudity"):
        NudeNetJudge(detector=FakeDetector(DETECTIONS)).verdict(IMAGES, "violence")
