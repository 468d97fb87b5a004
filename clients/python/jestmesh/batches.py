"""Curated batches from a Curate (or StreamBatches) session, with a checkpointable cursor."""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
from collections import deque

import grpc
import numpy as np

from ._proto import enums, pb
from .errors import JestMeshError, ProtocolError, ScoreError, from_rpc_error

POLICIES = {
    "learnability": "POLICY_LEARNABILITY",
    "hard-learner": "POLICY_HARD_LEARNER",
    "easy-reference": "POLICY_EASY_REFERENCE",
    "uniform": "POLICY_UNIFORM",
}
LEARNER_FREE = {"easy-reference", "uniform"}
LOSSES = {"sigmoid": "LOSS_KIND_SIGMOID", "per_example": "LOSS_KIND_PER_EXAMPLE", "softmax": "LOSS_KIND_SOFTMAX"}
#: Statuses after which the client reopens the stream and resumes after its cursor (as JestMesh.Client does).
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
#: |‖row‖ − 1| the service accepts for learner embeddings.
NORM_TOLERANCE = 1e-3
STATE_VERSION = 1


class Examples:
    """Examples of a candidate or a batch as NumPy arrays (row i is example i)."""

    __slots__ = ("ids", "images", "tokens", "labels", "ground_truth")

    def __init__(self, examples):
        n = len(examples)
        self.ids = np.fromiter((e.id for e in examples), dtype=np.int64, count=n)
        if n == 0:
            self.images = np.zeros((0, 28, 28), np.uint8)
            self.tokens = np.zeros((0, 0), np.int32)
            self.labels = None
            self.ground_truth = np.zeros(0, np.int32)
            return
        first = examples[0]
        h, w = first.image_height or 28, first.image_width or 28
        blob = b"".join([e.image for e in examples])
        per = len(first.image)
        if per == 0 or per % (h * w) != 0 or len(blob) != n * per:
            raise ProtocolError(f"images of {n} examples are not all {h}x{w}xC bytes ({len(blob)} bytes in all)")
        channels = per // (h * w)
        shape = (n, h, w) if channels == 1 else (n, h, w, channels)
        self.images = np.frombuffer(blob, dtype=np.uint8).reshape(shape)
        lengths = [len(e.caption_tokens) for e in examples]
        longest = max(lengths)
        flat = np.fromiter(itertools.chain.from_iterable(e.caption_tokens for e in examples), dtype=np.int32, count=sum(lengths))
        if all(length == longest for length in lengths):
            self.tokens = flat.reshape(n, longest)
        else:
            self.tokens = np.zeros((n, longest), np.int32)
            offset = 0
            for i, length in enumerate(lengths):
                self.tokens[i, :length] = flat[offset:offset + length]
                offset += length
        has = [e.HasField("label") for e in examples]
        self.labels = np.fromiter((e.label if h_ else -1 for e, h_ in zip(examples, has)), dtype=np.int32, count=n) if any(has) else None
        self.ground_truth = np.fromiter((e.ground_truth for e in examples), dtype=np.int32, count=n)

    def __len__(self):
        return len(self.ids)


class Candidate(Examples):
    """A candidate super-batch the learner scores: ``ids`` int64 [N], ``images`` uint8 [N, H, W] (or
    [N, H, W, C]), ``tokens`` int32 [N, L] padded with 0, ``labels`` int32 [N] (−1 where absent) or None."""

    __slots__ = ("super_batch_id", "super_batch_sequence", "message")

    def __init__(self, message):
        super().__init__(message.examples)
        self.super_batch_id = message.super_batch_id
        self.super_batch_sequence = message.super_batch_sequence
        self.message = message


class Batch(Examples):
    """One curated batch: ``sequence`` (1, 2, ... within the session), the b selected examples as
    arrays (``ids``, ``images``, ``tokens``, ``labels``), ``filtered_ids`` (the rest of its
    super-batch), ``diagnostics`` (a dict), ``replayed`` (sent again after a resume)."""

    __slots__ = ("sequence", "session_id", "super_batch_id", "filtered_ids", "diagnostics", "replayed", "message")

    def __init__(self, message):
        super().__init__(message.examples)
        self.sequence = message.sequence
        self.session_id = message.session_id
        self.super_batch_id = message.super_batch_id
        self.filtered_ids = np.fromiter(message.filtered_ids, dtype=np.int64, count=len(message.filtered_ids))
        d = message.diagnostics
        self.diagnostics = {
            "mean_score_selected": d.mean_score_selected,
            "mean_score_all": d.mean_score_all,
            "subset_score": d.subset_score,
            "chunk_entropy": list(d.chunk_entropy),
            "selection_ms": d.selection_ms,
            "learner_staleness": d.learner_staleness,
            "recorded_unix_ms": message.recorded_unix_ms,
        }
        self.replayed = message.replayed
        self.message = message


class _Requests:
    """The request side of a Curate call: grpc drains this iterator on its own thread."""

    _END = object()

    def __init__(self):
        self._queue = queue.SimpleQueue()

    def put(self, request):
        self._queue.put(request)

    def close(self):
        self._queue.put(self._END)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            yield item


class _StreamEnded(Exception):
    pass


def _float32(value, name):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise ScoreError(f"{name} has dtype {array.dtype}; return float32 numbers")
    return np.ascontiguousarray(array, dtype=np.float32)


def _tensor(array):
    return pb.Tensor(dtype=enums["DType"]["DTYPE_FLOAT32"], shape=list(array.shape), data=array.astype("<f4", copy=False).tobytes())


def _check_finite(array, name):
    if not np.isfinite(array).all():
        where = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ScoreError(f"{name} contains NaN or infinity (first at index {where})")


class CuratedBatches:
    """Curated batches of one session, iterable; the caller's checkpoint owns the cursor.

    ``policy``: ``learnability`` (JEST), ``hard-learner`` (both need ``score``), ``easy-reference`` or
    ``uniform`` (learner-free, served by StreamBatches). ``score(candidate)`` returns the learner's
    no-grad ``(image_embeddings [N, d], text_embeddings [N, d], alpha, beta)``, rows L2-normalised,
    for ``loss="sigmoid"`` and ``loss="softmax"`` (InfoNCE; beta is ignored), or the per-example losses [N]
    for ``loss="per_example"``.

    The learner scores each candidate after it trained on the previous batch (exact JEST). A batch
    the iterator returned counts as consumed: ``state_dict()`` taken after batch k resumes at k + 1.
    Batches the transport prefetched never move the cursor. Transient failures (the service
    restarting) reopen the stream and resume after the cursor, for up to ``reconnect_timeout``
    seconds without progress; then, and for every other failure, a :class:`JestMeshError` is raised.
    ``steps``: stop after the batch with this sequence (None: until closed).
    """

    def __init__(self, client, job, policy="learnability", filter_ratio=0.8, chunks=16, gain=1.0, seed=0,
                 score=None, loss="sigmoid", *, greedy=False, steps=None, reconnect_timeout=60.0):
        policy = policy.replace("_", "-")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} must be one of {', '.join(POLICIES)}")
        loss = loss.replace("-", "_")
        if loss not in LOSSES:
            raise ValueError(f"loss {loss!r} must be one of {', '.join(LOSSES)}")
        self.learner_free = policy in LEARNER_FREE
        if not self.learner_free and score is None:
            raise ValueError(f"policy {policy!r} needs the learner's scores: pass score=fn(candidate)")
        if self.learner_free and score is not None:
            raise ValueError(f"policy {policy!r} needs no learner: leave score unset")
        self._client = client
        self.job = job
        self.policy = policy
        self.filter_ratio = float(filter_ratio)
        self.chunks = int(chunks)
        self.gain = float(gain)
        self.seed = int(seed)
        self.loss = loss
        self.greedy = bool(greedy)
        self.steps = steps
        self.reconnect_timeout = float(reconnect_timeout)
        self._score = score
        self._session_id = ""
        self._cursor = 0
        self._iterator = None
        self._active = None
        self._closed = threading.Event()
        #: SessionOpened of the current stream (N, b, reference hash), once open.
        self.opened = None
        self.reconnects = 0
        #: Seconds spent: waiting on the stream (incl. decoding), converting arrays, in score(), encoding scores.
        self.stats = {"batches": 0, "wait_s": 0.0, "convert_s": 0.0, "score_s": 0.0, "encode_s": 0.0}

    # -- checkpoint -------------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def cursor(self) -> int:
        """Sequence of the last batch handed to the caller (0: none)."""
        return self._cursor

    def state_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "session_id": self._session_id,
            "cursor": self._cursor,
            "job": self.job,
            "policy": self.policy,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resumes the session of ``state`` after its cursor (the next batch is cursor + 1)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not {STATE_VERSION}")
        for key in ("job", "policy"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"state is for {key} {state.get(key)!r}, these batches are for {getattr(self, key)!r}")
        cursor = int(state["cursor"])
        if cursor < 0:
            raise ValueError(f"state cursor {cursor} must be >= 0")
        self._stop_stream()
        self._session_id = str(state["session_id"])
        self._cursor = cursor

    # -- iteration --------------------------------------------------------------------------
    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self._closed.is_set():
            raise StopIteration
        if self._iterator is None:
            self._iterator = self._run()
        try:
            return next(self._iterator)
        except BaseException:
            # The stream is over (done, closed, or an error such as the caller's score raising): the
            # next call reopens it after the cursor instead of finding an exhausted generator.
            self._iterator = None
            raise

    def close(self) -> None:
        """Ends the stream (the service releases the session at once); the state stays resumable."""
        self._closed.set()
        self._stop_stream()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self._stop_stream()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _stop_stream(self):
        active, self._active = self._active, None
        if active is not None:
            call, requests = active
            if requests is not None:
                requests.close()
            call.cancel()
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            try:
                iterator.close()
            except ValueError:
                pass  # running on another thread: the cancelled call ends it

    def _done(self):
        return self.steps is not None and self._cursor >= self.steps

    def _run(self):
        deadline = None
        delay = 0.1
        while not self._done() and not self._closed.is_set():
            progress = self._cursor
            try:
                yield from (self._stream_batches() if self.learner_free else self._curate())
                if self._done():
                    return
                raise _StreamEnded()
            except (grpc.RpcError, _StreamEnded) as e:
                error = from_rpc_error(e) if isinstance(e, grpc.RpcError) else JestMeshError(
                    grpc.StatusCode.UNAVAILABLE, "the Selection service ended the stream")
                if self._closed.is_set():
                    return
                if error.code not in RETRYABLE or self.reconnect_timeout <= 0:
                    raise error from None
                if self._cursor != progress:
                    deadline, delay = None, 0.1
                now = time.monotonic()
                deadline = deadline or now + self.reconnect_timeout
                if now >= deadline:
                    raise JestMeshError(error.code, f"{error.details} (no progress after reconnecting for {self.reconnect_timeout:.0f} s)") from None
                self.reconnects += 1
                # Backoff between reconnects; close() interrupts it.
                self._closed.wait(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 5.0)

    def _open(self):
        return pb.SessionOpen(
            job=self.job,
            policy=enums["Policy"][POLICIES[self.policy]],
            filter_ratio=self.filter_ratio,
            chunks=self.chunks,
            gain=self.gain,
            seed=self.seed,
            loss=enums["LossKind"][LOSSES[self.loss]],
            greedy=self.greedy,
            session_id=self._session_id,
            cursor=self._cursor,
        )

    def _accept(self, message):
        if self._session_id and message.session_id != self._session_id:
            raise ProtocolError(f"the service sent a batch of session {message.session_id}, the client holds {self._session_id}")
        if message.sequence != self._cursor + 1:
            raise ProtocolError(f"session {message.session_id} sent batch {message.sequence} after the cursor {self._cursor}: a gap or a repeat")
        started = time.perf_counter()
        batch = Batch(message)
        self.stats["convert_s"] += time.perf_counter() - started
        self._session_id = message.session_id
        self._cursor = message.sequence
        self.stats["batches"] += 1
        return batch

    def _next_message(self, call):
        started = time.perf_counter()
        try:
            return next(call)
        except StopIteration:
            raise _StreamEnded() from None
        finally:
            self.stats["wait_s"] += time.perf_counter() - started

    def _stream_batches(self):
        remaining = 0 if self.steps is None else self.steps - self._cursor
        call = self._client.stream_batches(pb.StreamBatchesRequest(session=self._open(), max_batches=remaining),
                                           metadata=self._client.metadata)
        self._active = (call, None)
        try:
            while not self._done():
                message = self._next_message(call)
                yield self._accept(message)
        finally:
            if self._active is not None and self._active[0] is call:
                self._active = None
            call.cancel()

    def _curate(self):
        requests = _Requests()
        requests.put(pb.CurateRequest(open=self._open()))
        call = self._client.curate(iter(requests), metadata=self._client.metadata)
        self._active = (call, requests)
        candidates = deque()
        outstanding = 0  # scores sent whose batch has not come yet
        try:
            while not self._done():
                if outstanding == 0 and candidates:
                    # The learner is idle (it trained on the last batch): score the oldest candidate now.
                    requests.put(pb.CurateRequest(scores=self._scores(candidates.popleft())))
                    outstanding = 1
                    continue
                response = self._next_message(call)
                kind = response.WhichOneof("kind")
                if kind == "opened":
                    self._on_opened(response.opened)
                elif kind == "candidate":
                    candidates.append(response.candidate)
                elif kind == "batch":
                    if not response.batch.replayed:
                        outstanding = max(0, outstanding - 1)
                    batch = self._accept(response.batch)
                    yield batch
                    # The caller came back for the next batch: it consumed this one.
                    requests.put(pb.CurateRequest(ack=pb.Ack(sequence=batch.sequence)))
                else:
                    raise ProtocolError(f"unknown CurateResponse kind {kind!r}")
        finally:
            if self._active is not None and self._active[0] is call:
                self._active = None
            requests.close()
            call.cancel()

    def _on_opened(self, opened):
        if self._session_id and opened.session_id != self._session_id:
            raise ProtocolError(f"the service resumed session {opened.session_id}, the client holds {self._session_id}")
        self._session_id = opened.session_id
        self.opened = opened

    def _scores(self, message):
        started = time.perf_counter()
        candidate = Candidate(message)
        self.stats["convert_s"] += time.perf_counter() - started
        started = time.perf_counter()
        result = self._score(candidate)
        self.stats["score_s"] += time.perf_counter() - started
        started = time.perf_counter()
        scores = self._encode_scores(result, candidate)
        self.stats["encode_s"] += time.perf_counter() - started
        return scores

    def _encode_scores(self, result, candidate):
        n = len(candidate)
        scores = pb.LearnerScores(super_batch_id=candidate.super_batch_id, learner_step=self._cursor)
        if self.loss == "per_example":
            losses = _float32(result, "score(candidate) (per-example losses)")
            if losses.shape != (n,):
                raise ScoreError(f"per-example losses have shape {list(losses.shape)}; the candidate has N = {n}, so [{n}]")
            _check_finite(losses, "per-example losses")
            scores.per_example_losses.CopyFrom(_tensor(losses))
            return scores
        if not isinstance(result, (tuple, list)) or len(result) != 4:
            raise ScoreError(f"score(candidate) must return (image_embeddings, text_embeddings, alpha, beta) for loss={self.loss!r}")
        image = _float32(result[0], "image_embeddings")
        text = _float32(result[1], "text_embeddings")
        for name, array in (("image_embeddings", image), ("text_embeddings", text)):
            if array.ndim != 2 or array.shape[0] != n or array.shape[1] == 0:
                raise ScoreError(f"{name} has shape {list(array.shape)}; the candidate has N = {n}, so [{n}, d]")
        if image.shape != text.shape:
            raise ScoreError(f"image_embeddings {list(image.shape)} and text_embeddings {list(text.shape)} differ in shape")
        for name, array in (("image_embeddings", image), ("text_embeddings", text)):
            _check_finite(array, name)
            norms = np.linalg.norm(array, axis=1)
            bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
            if bad.size:
                raise ScoreError(f"{name} rows must be L2-normalised: row {bad[0]} has norm {norms[bad[0]]:.4g}")
        try:
            alpha, beta = float(result[2]), float(result[3])
        except (TypeError, ValueError):
            raise ScoreError("alpha and beta must be numbers") from None
        if not (math.isfinite(alpha) and math.isfinite(beta)):
            raise ScoreError(f"alpha/beta = {alpha}/{beta} must be finite")
        scores.image_embeddings.CopyFrom(_tensor(image))
        scores.text_embeddings.CopyFrom(_tensor(text))
        scores.alpha = alpha
        scores.beta = beta
        return scores
