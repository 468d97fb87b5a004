"""A Python Curate session against a real `jestmesh up`: no gap, no repeat, complete accounting."""

import numpy as np

from conftest import deadline


def test_fifty_batches_no_gap_no_repeat_and_filtered_plus_selected_is_the_candidate(uninterrupted):
    batches, candidates, state = uninterrupted
    assert [b.sequence for b in batches] == list(range(1, 51))
    assert len({b.session_id for b in batches}) == 1
    assert state["cursor"] == 50 and state["session_id"] == batches[0].session_id
    seen = set()
    for b in batches:
        assert not b.replayed
        assert b.ids.shape == (128,) and b.images.shape == (128, 28, 28) and b.images.dtype == np.uint8
        assert b.tokens.shape[0] == 128 and b.tokens.dtype == np.int32
        assert b.labels is not None and b.labels.shape == (128,)
        assert b.super_batch_id in candidates, f"batch {b.sequence} is from a super-batch the learner never scored"
        offered = candidates[b.super_batch_id]
        selected, filtered = set(b.ids.tolist()), set(b.filtered_ids.tolist())
        assert len(selected) == 128 and len(filtered) == len(offered) - 128
        assert not selected & filtered
        assert selected | filtered == set(offered.tolist())
        assert not selected & seen, f"batch {b.sequence} repeats examples of an earlier batch"
        seen |= selected
        assert len(b.diagnostics["chunk_entropy"]) == 16
    # Every super-batch was curated once.
    assert len({b.super_batch_id for b in batches}) == 50


def test_close_releases_the_session_so_a_resume_attaches_at_once(client):
    import jestmesh
    from helpers import score

    with deadline(300, "open, close and resume"):
        first = jestmesh.CuratedBatches(client, "misc", score=score)
        got = [next(first).sequence for _ in range(3)]
        state = first.state_dict()
        first.close()
        again = jestmesh.CuratedBatches(client, "misc", score=score)
        again.load_state_dict(state)
        with again:
            assert [next(again).sequence for _ in range(2)] == [4, 5]
            assert again.session_id == state["session_id"]
    assert got == [1, 2, 3]


def test_prefetched_batches_do_not_move_the_cursor_a_resume_replays_them(client):
    """Stopping after batch 3 while batch 4 was already received: a state of 3 resumes at 4, replayed."""
    import jestmesh
    from helpers import score

    with deadline(300, "prefetch and resume"):
        with jestmesh.CuratedBatches(client, "misc", score=score) as stream:
            for _ in range(3):
                next(stream)
            state = stream.state_dict()
            fourth = next(stream)  # received and recorded by the service, not consumed per `state`
        assert state["cursor"] == 3 and fourth.sequence == 4
        with jestmesh.CuratedBatches(client, "misc", score=score) as resumed:
            resumed.load_state_dict(state)
            again = next(resumed)
        assert again.sequence == 4 and again.replayed
        assert again.ids.tolist() == fourth.ids.tolist()


def test_per_example_losses_curate_with_hard_learner(client):
    """loss="per_example": score returns one loss per candidate; hard-learner keeps the b highest."""
    import jestmesh

    def losses(candidate):
        return (candidate.ids % 1000).astype(np.float32)  # a deterministic "loss": larger ids mod 1000 are harder

    with deadline(300, "per-example session"), jestmesh.CuratedBatches(client, "misc", policy="hard-learner", loss="per_example",
                                                                       score=losses, chunks=1, gain=100.0, greedy=True, steps=2) as s:
        got = list(s)
    assert [b.sequence for b in got] == [1, 2]
    for b in got:
        kept, dropped = b.ids % 1000, b.filtered_ids % 1000
        assert len(kept) == 128 and kept.min() >= dropped.max(), "greedy hard-learner keeps the highest losses"


def test_softmax_loss_curates_with_the_learners_embeddings(client):
    """loss="softmax" (InfoNCE): the same score function as sigmoid; complete accounting, no repeat."""
    import jestmesh
    from helpers import Recorder

    recorder = Recorder()
    with deadline(300, "softmax session"), jestmesh.CuratedBatches(client, "misc", loss="softmax", score=recorder,
                                                                   chunks=4, steps=2) as s:
        got = list(s)
    assert [b.sequence for b in got] == [1, 2]
    for b in got:
        offered = set(recorder.candidates[b.super_batch_id].tolist())
        selected, filtered = set(b.ids.tolist()), set(b.filtered_ids.tolist())
        assert len(selected) == 128 and not selected & filtered and selected | filtered == offered
        assert len(b.diagnostics["chunk_entropy"]) == 4
