"""``jestmesh.torch.CuratedDataset``: curated batches as a ``torch.utils.data.IterableDataset``.

Each item is one curated batch as a dict of tensors (``images`` uint8 [b, H, W] (or [b, H, W, C]),
``tokens`` int64 [b, L], ``ids`` int64 [b], ``labels`` int64 [b] when present, ``sequence``).
Use it with ``DataLoader(dataset, batch_size=None, num_workers=0)``: learner-in-the-loop curation
scores each candidate with the model being trained, so it must run in the training process
(worker processes would score with a stale copy of the model and could not checkpoint the cursor).

``state_dict()`` / ``load_state_dict()`` follow torchdata's ``StatefulDataLoader`` protocol: the
state holds the session and the sequence of the last batch handed out, so a loader restored from a
checkpoint taken after batch k yields batch k + 1 next.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .batches import CuratedBatches


class CuratedDataset(IterableDataset):
    """Wraps :class:`jestmesh.CuratedBatches` (same arguments after ``client``)."""

    def __init__(self, client, job, **kwargs):
        super().__init__()
        self.batches = CuratedBatches(client, job, **kwargs)

    def __iter__(self):
        info = get_worker_info()
        if info is not None:
            raise RuntimeError("jestmesh.torch.CuratedDataset runs in the training process: use num_workers=0 "
                               "(learner-in-the-loop scoring needs the live model and the checkpoint owns the cursor)")
        for batch in self.batches:
            item = {
                "sequence": batch.sequence,
                "ids": torch.from_numpy(batch.ids),
                "images": torch.from_numpy(np.array(batch.images)),
                "tokens": torch.from_numpy(batch.tokens.astype(np.int64)),
            }
            if batch.labels is not None:
                item["labels"] = torch.from_numpy(batch.labels.astype(np.int64))
            yield item

    def state_dict(self):
        return self.batches.state_dict()

    def load_state_dict(self, state):
        self.batches.load_state_dict(state)

    def close(self):
        self.batches.close()
