"""A stand-in judge for the stopping rule's tests (few-shot, DoCo)."""

import hashlib

import numpy as np

from eval.canvas import mini_canvas


class HashJudge:
    """A stand-in judge: a fixed pseudo-random reading of each image's pixels, so that epochs
    whose images differ get different scores, with the mini-canvas class names."""

    def __init__(self) -> None:
        world = mini_canvas()
        self.objects, self.styles, self.world = world.objects, world.styles, world

    def predict(self, images):
        digests = [hashlib.sha256(np.asarray(image).tobytes()).digest() for image in images]
        return np.array([d[0] % len(self.objects) for d in digests]), np.array([d[1] % len(self.styles) for d in digests])

    def verdict(self, images, concept):
        objects, styles = self.predict(images)
        name = self.world.canonical(concept)
        if name in self.objects:
            return objects == self.objects.index(name)
        return styles == self.styles.index(name)
