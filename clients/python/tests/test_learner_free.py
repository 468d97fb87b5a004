"""Learner-free policies use StreamBatches: no score function, same cursor rules."""

import pytest

from conftest import deadline


@pytest.mark.parametrize("policy", ["uniform", "easy-reference"])
def test_learner_free_session_resumes_after_its_cursor(client, policy):
    import jestmesh

    with deadline(300, f"{policy} session"):
        with jestmesh.CuratedBatches(client, "misc", policy=policy) as stream:
            first = [next(stream) for _ in range(5)]
            state = stream.state_dict()
        assert [b.sequence for b in first] == [1, 2, 3, 4, 5]
        assert state["cursor"] == 5 and state["session_id"]
        with jestmesh.CuratedBatches(client, "misc", policy=policy, steps=8) as resumed:
            resumed.load_state_dict(state)
            rest = list(resumed)
        assert [b.sequence for b in rest] == [6, 7, 8]
        assert {b.session_id for b in rest} == {state["session_id"]}
        seen = set()
        for b in first + rest:
            assert len(b.ids) == 128 and not seen & set(b.ids.tolist())
            seen |= set(b.ids.tolist())


def test_learner_policy_without_score_and_learner_free_with_one_are_refused():
    import jestmesh

    with pytest.raises(ValueError, match="needs the learner"):
        jestmesh.CuratedBatches(object(), "misc", policy="learnability")
    with pytest.raises(ValueError, match="needs no learner"):
        jestmesh.CuratedBatches(object(), "misc", policy="uniform", score=lambda c: None)
    with pytest.raises(ValueError, match="policy"):
        jestmesh.CuratedBatches(object(), "misc", policy="jest", score=lambda c: None)
