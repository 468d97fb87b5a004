"""`jestmesh up` restarted with the same --state mid-session: the session goes on after its cursor."""

from conftest import deadline


def test_session_survives_a_restart_of_up(up, client):
    import jestmesh
    from helpers import Recorder

    recorder = Recorder()
    stream = jestmesh.CuratedBatches(client, "misc", score=recorder, reconnect_timeout=900)
    with deadline(300, "before the restart"):
        before = [next(stream) for _ in range(5)]
    up.stop()
    up.start()  # same --state, port and key
    with deadline(900, "after the restart"):
        after = [next(stream) for _ in range(5)]  # the old stream is gone: the client reconnects and resumes
    state = stream.state_dict()
    stream.close()
    assert stream.reconnects >= 1
    assert [b.sequence for b in before + after] == list(range(1, 11))
    assert {b.session_id for b in before + after} == {state["session_id"]}
    for b in before + after:
        offered = set(recorder.candidates[b.super_batch_id].tolist())
        assert set(b.ids.tolist()) | set(b.filtered_ids.tolist()) == offered

    with deadline(300, "resume from state after the restart"), jestmesh.CuratedBatches(client, "misc", score=recorder, steps=12) as again:
        again.load_state_dict(state)
        assert [b.sequence for b in again] == [11, 12]
