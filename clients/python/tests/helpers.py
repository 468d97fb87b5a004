"""Shared by the tests and the child trainer they kill: a deterministic stand-in learner."""

import numpy as np

_TABLE = np.random.default_rng(7).standard_normal((2, 4096, 64)).astype(np.float32)


def _normalised(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def score(candidate):
    """Embeddings that depend only on the example ids, so two sessions over the same candidates select alike."""
    slot = candidate.ids % _TABLE.shape[1]
    return _normalised(_TABLE[0][slot]), _normalised(_TABLE[1][slot] + 0.5 * _TABLE[0][slot]), 10.0, -10.0


class Recorder:
    """Wraps a score function and remembers every candidate's ids by super-batch id."""

    def __init__(self, fn=score):
        self.fn = fn
        self.candidates = {}

    def __call__(self, candidate):
        self.candidates[candidate.super_batch_id] = candidate.ids.copy()
        return self.fn(candidate)
