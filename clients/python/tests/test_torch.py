"""jestmesh.torch.CuratedDataset in a DataLoader (num_workers=0), with state_dict/load_state_dict."""

import pytest

from conftest import deadline

torch = pytest.importorskip("torch")


def test_dataset_in_a_dataloader_resumes_after_the_consumed_batch(client):
    from torch.utils.data import DataLoader

    from helpers import score
    from jestmesh.torch import CuratedDataset

    with deadline(300, "torch dataset"):
        data = CuratedDataset(client, "misc", score=score)
        loader = DataLoader(data, batch_size=None, num_workers=0)
        taken = []
        for item in loader:
            taken.append(item)
            if len(taken) == 3:
                break
        state = data.state_dict()
        data.close()
        assert [t["sequence"] for t in taken] == [1, 2, 3] and state["cursor"] == 3
        assert taken[0]["images"].dtype == torch.uint8 and taken[0]["images"].shape == (128, 28, 28)
        assert taken[0]["tokens"].dtype == torch.int64 and taken[0]["labels"].shape == (128,)

        again = CuratedDataset(client, "misc", score=score, steps=5)
        again.load_state_dict(state)
        rest = list(DataLoader(again, batch_size=None, num_workers=0))
        again.close()
    assert [t["sequence"] for t in rest] == [4, 5]


def test_worker_processes_are_refused(client):
    from torch.utils.data import DataLoader

    from helpers import score
    from jestmesh.torch import CuratedDataset

    data = CuratedDataset(client, "misc", score=score)
    with deadline(120, "workers"), pytest.raises(RuntimeError, match="num_workers=0"):
        next(iter(DataLoader(data, batch_size=None, num_workers=1)))
    data.close()
