"""Bad use ends in a Python exception naming the problem, within a deadline, and the service stays up."""

import grpc
import numpy as np
import pytest

from conftest import deadline


def _service_still_serves(client):
    import jestmesh

    with deadline(300, "a good session after bad use"), jestmesh.CuratedBatches(client, "misc", policy="uniform", steps=1) as s:
        assert [b.sequence for b in s] == [1]


def test_wrong_api_key_is_unauthenticated(up):
    import jestmesh

    with deadline(60, "wrong api key"), jestmesh.CurationClient(up.address, "not-the-key-0123456789") as bad:
        for policy, score in (("learnability", lambda c: None), ("uniform", None)):
            with pytest.raises(jestmesh.JestMeshError) as e:
                next(iter(jestmesh.CuratedBatches(bad, "misc", policy=policy, score=score)))
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED and not e.value.local
            assert e.value.details, "the service's message is carried"


@pytest.mark.parametrize("bad, match", [
    (lambda s: (s[0][:-1], s[1], s[2], s[3]), r"image_embeddings has shape \[639, 64\].*\[640, d\]"),
    (lambda s: (s[0], s[1][:, :8], s[2], s[3]), "differ in shape"),
    (lambda s: (np.where(np.arange(len(s[0]))[:, None] == 5, np.nan, s[0]), s[1], s[2], s[3]), "image_embeddings contains NaN"),
    (lambda s: (s[0], s[1], float("nan"), s[3]), "alpha/beta"),
    (lambda s: (s[0] * 2, s[1], s[2], s[3]), "L2-normalised: row 0"),
    (lambda s: s[:2], r"must return \(image_embeddings"),
])
def test_a_score_of_the_wrong_shape_or_with_nan_is_refused_before_sending(client, bad, match):
    import jestmesh
    from helpers import score

    with deadline(300, "bad scores"):
        with jestmesh.CuratedBatches(client, "misc", score=lambda c: bad(score(c))) as s:
            with pytest.raises(jestmesh.ScoreError, match=match) as e:
                next(s)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.local
    _service_still_serves(client)


def test_a_score_function_that_raises_surfaces_its_error_and_the_next_call_resumes(client):
    import jestmesh
    from helpers import score

    calls = []

    def flaky(candidate):
        calls.append(candidate.super_batch_id)
        if len(calls) == 1:
            raise RuntimeError("learner out of memory")
        return score(candidate)

    with deadline(300, "raising score"), jestmesh.CuratedBatches(client, "misc", score=flaky) as s:
        with pytest.raises(RuntimeError, match="out of memory"):
            next(s)
        session = s.session_id
        assert session and s.cursor == 0
        batch = next(s)
    assert batch.sequence == 1 and batch.session_id == session
    # The candidate the failed call held went back to the job, first in line, and was offered again.
    assert calls[1] == calls[0] and batch.super_batch_id == calls[0]


def test_per_example_losses_of_the_wrong_shape_are_refused(client):
    import jestmesh

    with deadline(300, "bad losses"), jestmesh.CuratedBatches(client, "misc", policy="hard-learner", loss="per_example",
                                                              score=lambda c: np.zeros((len(c), 2), np.float32)) as s:
        with pytest.raises(jestmesh.ScoreError, match=r"per-example losses have shape \[640, 2\]"):
            next(s)


def test_scores_the_service_refuses_come_back_as_its_invalid_argument(client):
    """An embedding width other than the reference's passes the client's checks; the service names it."""
    import jestmesh
    from helpers import score

    def narrow(candidate):
        image, text, alpha, beta = score(candidate)
        image, text = image[:, :16], text[:, :16]
        return image / np.linalg.norm(image, axis=1, keepdims=True), text / np.linalg.norm(text, axis=1, keepdims=True), alpha, beta

    with deadline(300, "service-side refusal"), jestmesh.CuratedBatches(client, "misc", score=narrow) as s:
        with pytest.raises(jestmesh.JestMeshError) as e:
            next(s)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and not e.value.local
    assert "image_embeddings" in e.value.details and "[640, 16]" in e.value.details
    _service_still_serves(client)


def test_resuming_a_foreign_session_id_is_refused(client):
    import jestmesh
    from helpers import score

    with deadline(120, "foreign session"):
        unknown = jestmesh.CuratedBatches(client, "misc", score=score)
        unknown.load_state_dict({"version": 1, "session_id": "0" * 32, "cursor": 3, "job": "misc", "policy": "learnability"})
        with pytest.raises(jestmesh.JestMeshError) as e:
            next(unknown)
        assert e.value.code == grpc.StatusCode.NOT_FOUND and "session_id" in e.value.details
        unknown.close()

        # A real session, resumed with settings it was not opened with (another chunk count).
        with jestmesh.CuratedBatches(client, "misc", score=score) as s:
            next(s)
            state = s.state_dict()
        other = jestmesh.CuratedBatches(client, "misc", score=score, chunks=8)
        other.load_state_dict(state)
        with pytest.raises(jestmesh.JestMeshError) as e:
            next(other)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "chunks" in e.value.details
        other.close()

        # A state of another job is refused locally, before any call.
        with pytest.raises(ValueError, match="job"):
            jestmesh.CuratedBatches(client, "a", score=score).load_state_dict(state)
    _service_still_serves(client)


def test_nothing_listening_fails_after_the_reconnect_deadline_instead_of_hanging():
    import jestmesh
    from conftest import free_port

    with deadline(60, "no service"), jestmesh.CurationClient(f"127.0.0.1:{free_port()}", "k" * 20) as nowhere:
        with pytest.raises(jestmesh.JestMeshError) as e:
            next(iter(jestmesh.CuratedBatches(nowhere, "misc", policy="uniform", reconnect_timeout=2)))
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_an_https_address_speaks_tls(up, tmp_path):
    """https:// makes a TLS channel: against `up`'s plain-text port the handshake fails (UNAVAILABLE), never hangs."""
    import jestmesh

    with pytest.raises(FileNotFoundError):
        jestmesh.CurationClient(f"https://{up.address}", up.key, ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="https"):
        jestmesh.CurationClient(up.address, up.key, ca_file=str(tmp_path / "missing.pem"))
    with deadline(60, "TLS to a plain-text port"), jestmesh.CurationClient(f"https://{up.address}", up.key) as tls:
        with pytest.raises(jestmesh.JestMeshError) as e:
            next(iter(jestmesh.CuratedBatches(tls, "misc", policy="uniform", reconnect_timeout=2)))
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
