using System.Diagnostics;
using Grpc.Core;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>
/// The Curation gRPC service: sessions over the job feeds, every batch recorded before it is sent
/// and its super-batch acked after that, replays after a cursor, backpressure through the stream.
/// </summary>
public sealed partial class CurationService : Protos.V1.Curation.CurationBase
{
    private readonly SessionStore _store;
    private readonly JobFeeds _feeds;
    private readonly SelectionOptions _options;
    private readonly ILogger<CurationService> _logger;

    private readonly IHostApplicationLifetime _lifetime;

    public CurationService(SessionStore store, JobFeeds feeds, IOptions<SelectionOptions> options, IHostApplicationLifetime lifetime, ILogger<CurationService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _lifetime = lifetime;
        _store = store;
        _feeds = feeds;
        _options = options.Value;
        _logger = logger;
    }

    public override async Task StreamBatches(StreamBatchesRequest request, IServerStreamWriter<CuratedBatch> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        if (request.Session is null)
        {
            throw BatchSelector.Invalid("session is missing.");
        }
        if (request.MaxBatches < 0)
        {
            throw BatchSelector.Invalid($"max_batches {request.MaxBatches} must be ≥ 0 (0 = until cancelled).");
        }
        Validate(request.Session, learnerFree: true, "session");
        var cancellationToken = context.CancellationToken;
        await using var lease = await AttachAsync(request.Session, learnerFree: true, "session", cancellationToken);
        var session = lease.Session;
        var token = lease.Token;
        var sent = 0;
        await foreach (var batch in _store.ReplayAsync(session, request.Session.Cursor, token))
        {
            using (StartSend(batch))
            {
                await responseStream.WriteAsync(batch, token);
            }
            if (++sent == request.MaxBatches)
            {
                return;
            }
        }
        var feed = await _feeds.GetAsync(session.Job, token);
        while (request.MaxBatches == 0 || sent < request.MaxBatches)
        {
            var delivery = await feed.TakeAsync(token);
            var (batch, span, acked) = await SelectAndRecordAsync(session, delivery, null, 0, token);
            // WriteAsync completes only when HTTP/2 flow control lets the batch go: a slow client
            // stops this loop, and with it the feed's prefetch and the broker.
            try
            {
                using (StartSend(batch, span))
                {
                    await responseStream.WriteAsync(batch, token);
                }
            }
            finally
            {
                await acked;
            }
            sent++;
        }
    }

    public override async Task Curate(IAsyncStreamReader<CurateRequest> requestStream, IServerStreamWriter<CurateResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        var cancellationToken = context.CancellationToken;
        if (!await requestStream.MoveNext(cancellationToken))
        {
            return;
        }
        if (requestStream.Current.KindCase != CurateRequest.KindOneofCase.Open)
        {
            throw BatchSelector.Invalid($"the first CurateRequest must be 'open', got '{requestStream.Current.KindCase}'.");
        }
        var open = requestStream.Current.Open;
        Validate(open, learnerFree: false, "open");
        await using var lease = await AttachAsync(open, learnerFree: false, "open", cancellationToken);
        var session = lease.Session;
        var token = lease.Token;
        var feed = await _feeds.GetAsync(session.Job, token);
        var (n, b, sha) = _feeds.LastSeen(session.Job, session.Settings.FilterRatio);
        await responseStream.WriteAsync(new CurateResponse
        {
            Opened = new SessionOpened { SessionId = session.Id, ResumeAfter = open.Cursor, SuperBatchSize = n, BatchSize = b, ReferenceCheckpointSha256 = sha },
        }, token);
        var sent = open.Cursor;
        var acked = open.Cursor;
        await foreach (var batch in _store.ReplayAsync(session, open.Cursor, token))
        {
            using (StartSend(batch))
            {
                await responseStream.WriteAsync(new CurateResponse { Batch = batch }, token);
            }
            sent = batch.Sequence;
        }
        if (BatchSelector.NeedsLearner(session.Settings.Policy))
        {
            await CurateWithLearnerAsync(session, feed, requestStream, responseStream, sent, acked, token);
        }
        else
        {
            await CurateLearnerFreeAsync(session, feed, requestStream, responseStream, sent, acked, token);
        }
    }

    private async Task CurateWithLearnerAsync(SessionState session, JobFeed feed, IAsyncStreamReader<CurateRequest> requests,
        IServerStreamWriter<CurateResponse> responses, long sent, long acked, CancellationToken token)
    {
        var inFlight = new Queue<Delivery>();
        using var takes = CancellationTokenSource.CreateLinkedTokenSource(token);
        Task<Delivery>? take = null;
        Task<bool>? read = null;
        try
        {
            while (true)
            {
                // Keep the next candidates at the client while it trains, so it scores the next one
                // as soon as its step ends; but never stop reading the client while waiting for data.
                if (take is null && inFlight.Count < _options.CandidatesAhead)
                {
                    take = feed.TakeAsync(takes.Token).AsTask();
                }
                read ??= requests.MoveNext(token);
                if (inFlight.Count == 0)
                {
                    await Task.WhenAny(take!);
                }
                else
                {
                    await Task.WhenAny(read, take ?? Task.Delay(Timeout.Infinite, token));
                }
                if (take is { IsCompleted: true })
                {
                    var delivery = await take;
                    take = null;
                    inFlight.Enqueue(delivery);
                    var candidate = new Candidate { SuperBatchId = delivery.Batch.Id, SuperBatchSequence = delivery.Batch.Sequence };
                    candidate.Examples.Add(delivery.Batch.Examples);
                    await responses.WriteAsync(new CurateResponse { Candidate = candidate }, token);
                    continue;
                }
                if (!read.IsCompleted)
                {
                    continue;
                }
                var more = await read;
                read = null;
                if (!more)
                {
                    return;
                }
                var request = requests.Current;
                switch (request.KindCase)
                {
                    case CurateRequest.KindOneofCase.Ack:
                        acked = Ack(request.Ack.Sequence, acked, sent);
                        break;
                    case CurateRequest.KindOneofCase.Scores:
                        if (!inFlight.TryPeek(out var expected) || request.Scores.SuperBatchId != expected.Batch.Id)
                        {
                            throw BatchSelector.Invalid($"scores.super_batch_id '{request.Scores.SuperBatchId}' is not the oldest candidate in flight, '{expected?.Batch.Id}'.");
                        }
                        var (batch, span, superBatchAcked) = await SelectAndRecordAsync(session, expected, request.Scores, sent - acked, token);
                        inFlight.Dequeue();
                        sent = batch.Sequence;
                        try
                        {
                            using (StartSend(batch, span))
                            {
                                await responses.WriteAsync(new CurateResponse { Batch = batch }, token);
                            }
                        }
                        finally
                        {
                            await superBatchAcked;
                        }
                        break;
                    default:
                        throw BatchSelector.Invalid($"'{request.KindCase}' is not allowed once the session is open (only 'scores' and 'ack').");
                }
            }
        }
        finally
        {
            await takes.CancelAsync();
            if (take is not null)
            {
                try
                {
                    inFlight.Enqueue(await take);
                }
                catch (OperationCanceledException)
                {
                    // Nothing was taken.
                }
            }
            // Candidates never selected from go to the job's next session: nothing recorded, nothing lost.
            while (inFlight.TryDequeue(out var unused))
            {
                feed.Return(unused);
            }
        }
    }

    private async Task CurateLearnerFreeAsync(SessionState session, JobFeed feed, IAsyncStreamReader<CurateRequest> requests,
        IServerStreamWriter<CurateResponse> responses, long sent, long acked, CancellationToken token)
    {
        while (true)
        {
            if (sent - acked < _options.BatchesAhead)
            {
                var delivery = await feed.TakeAsync(token);
                var (batch, span, superBatchAcked) = await SelectAndRecordAsync(session, delivery, null, sent - acked, token);
                sent = batch.Sequence;
                try
                {
                    using (StartSend(batch, span))
                    {
                        await responses.WriteAsync(new CurateResponse { Batch = batch }, token);
                    }
                }
                finally
                {
                    await superBatchAcked;
                }
                continue;
            }
            if (!await requests.MoveNext(token))
            {
                return;
            }
            if (requests.Current.KindCase != CurateRequest.KindOneofCase.Ack)
            {
                throw BatchSelector.Invalid($"'{requests.Current.KindCase}' is not allowed in a learner-free session (only 'ack').");
            }
            acked = Ack(requests.Current.Ack.Sequence, acked, sent);
        }
    }

    private static long Ack(long sequence, long acked, long sent)
    {
        if (sequence < acked || sequence > sent)
        {
            throw BatchSelector.Invalid($"ack.sequence {sequence} is outside [{acked}, {sent}] (acked so far, last sent).");
        }
        return sequence;
    }

    /// <summary>Selects, records (confirmed), then acks the super-batch: the order that makes a crash at any point safe.</summary>
    private async Task<(CuratedBatch Batch, ActivityContext Span, Task Acked)> SelectAndRecordAsync(SessionState session, Delivery delivery, LearnerScores? scores, long batchesAhead, CancellationToken token)
    {
        CuratedBatch batch;
        ActivityContext span;
        using (var activity = SelectionTelemetry.Source.StartActivity("selection.select", ActivityKind.Internal, delivery.Producer,
            links: delivery.Producer == default ? null : [new ActivityLink(delivery.Producer)]))
        {
            activity?.SetTag("jestmesh.session", session.Id);
            activity?.SetTag("jestmesh.super_batch.id", delivery.Batch.Id);
            activity?.SetTag("jestmesh.policy", session.Settings.Policy.ToString());
            try
            {
                batch = BatchSelector.Select(session.Settings, delivery.Batch, scores, session.Id, session.LastSequence + 1);
            }
            catch
            {
                delivery.Feed.Return(delivery);
                throw;
            }
            batch.Diagnostics.LearnerStaleness = batchesAhead;
            activity?.SetTag("jestmesh.sequence", batch.Sequence);
            SelectionTelemetry.SelectionLatency.Record(batch.Diagnostics.SelectionMs);
            SelectionTelemetry.MeanLearnability.Record(batch.Diagnostics.MeanScoreSelected);
            SelectionTelemetry.Staleness.Record(batchesAhead);
            // Recording must not be abandoned half-way by a client that goes away: the batch is
            // either in the log (and will be replayed) or not (and the super-batch is redelivered).
            try
            {
                await _store.RecordAsync(session, batch, CancellationToken.None);
            }
            catch (Exception ex) when (ex is PublishRejectedException or PublishUnroutableException)
            {
                // The broker refused the record or had no log to put it in, so it is not in the log:
                // the super-batch goes back to the job's feed, the session keeps its sequence, and
                // the client retries.
                delivery.Feed.Return(delivery);
                throw new RpcException(new Status(StatusCode.Unavailable, $"the batch log refused batch {batch.Sequence} of session {session.Id}: {ex.Message}; reconnect and resume."));
            }
            span = activity?.Context ?? default;
        }
        // Recorded, so the super-batch may be acked; the ack runs while the batch is sent rather
        // than before it (it is not on the learner's critical path). Callers await it after sending.
        return (batch, span, delivery.Feed.AckAsync(delivery));
    }

    private static Activity? StartSend(CuratedBatch batch, ActivityContext parent = default)
    {
        var activity = parent == default
            ? SelectionTelemetry.Source.StartActivity("curate.send", ActivityKind.Producer)
            : SelectionTelemetry.Source.StartActivity("curate.send", ActivityKind.Producer, parent);
        activity?.SetTag("jestmesh.sequence", batch.Sequence);
        activity?.SetTag("jestmesh.super_batch.id", batch.SuperBatchId);
        if (activity is not null)
        {
            batch.Traceparent = activity.Id ?? "";
        }
        return activity;
    }

    private static void Validate(SessionOpen open, bool learnerFree, string field)
    {
        if (string.IsNullOrEmpty(open.SessionId))
        {
            if (!ScoredRouter.JobName().IsMatch(open.Job))
            {
                throw BatchSelector.Invalid($"{field}.job '{open.Job}' must match {ScoredRouter.JobName()}.");
            }
            if (open.Policy == Policy.Unspecified || !Enum.IsDefined(open.Policy))
            {
                throw BatchSelector.Invalid($"{field}.policy must be one of LEARNABILITY, HARD_LEARNER, EASY_REFERENCE, UNIFORM (got {open.Policy}).");
            }
            if (learnerFree && BatchSelector.NeedsLearner(open.Policy))
            {
                throw BatchSelector.Invalid($"{field}.policy {open.Policy} needs the learner's scores: use Curate, or EASY_REFERENCE / UNIFORM here.");
            }
            if (!(open.FilterRatio >= 0 && open.FilterRatio < 1))
            {
                throw BatchSelector.Invalid($"{field}.filter_ratio {open.FilterRatio} must be in [0, 1).");
            }
            if (open.Chunks < 1)
            {
                throw BatchSelector.Invalid($"{field}.chunks {open.Chunks} must be ≥ 1.");
            }
            if (!double.IsFinite(open.Gain) || open.Gain < 0)
            {
                throw BatchSelector.Invalid($"{field}.gain {open.Gain} must be finite and ≥ 0.");
            }
            if (open.Loss == LossKind.PerExample && open.Policy is Policy.Learnability or Policy.EasyReference)
            {
                throw BatchSelector.Invalid($"{field}.loss PER_EXAMPLE with policy {open.Policy} needs the reference's per-example losses, which scored super-batches do not carry: use LOSS_KIND_SIGMOID.");
            }
            if (open.Cursor != 0)
            {
                throw BatchSelector.Invalid($"{field}.cursor {open.Cursor} needs {field}.session_id: a new session starts at 0.");
            }
        }
        else if (open.Cursor < 0)
        {
            throw BatchSelector.Invalid($"{field}.cursor {open.Cursor} must be ≥ 0.");
        }
    }

    private async Task<SessionLease> AttachAsync(SessionOpen open, bool learnerFree, string field, CancellationToken cancellationToken)
    {
        await _store.Loaded.WaitAsync(cancellationToken);
        SessionState session;
        if (string.IsNullOrEmpty(open.SessionId))
        {
            try
            {
                session = await _store.CreateAsync(open, learnerFree, cancellationToken);
            }
            catch (Exception ex) when (ex is PublishRejectedException or PublishUnroutableException)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"the batch log refused the new session's record: {ex.Message}; retry."));
            }
            LogOpened(_logger, session.Id, session.Job, session.Settings.Policy);
        }
        else
        {
            if (!_store.TryGet(open.SessionId, out session))
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"{field}.session_id '{open.SessionId}' is not a session of this service (or it expired from the batch log)."));
            }
            if (session.LearnerFree != learnerFree)
            {
                throw BatchSelector.Invalid($"{field}.session_id '{open.SessionId}' is a {(session.LearnerFree ? "StreamBatches" : "Curate")} session.");
            }
            if (open.Job.Length > 0 && open.Job != session.Job)
            {
                throw BatchSelector.Invalid($"{field}.job '{open.Job}' differs from the job '{session.Job}' of session {session.Id}.");
            }
        }
        // A stopping replica ends its streams at once (clients resume elsewhere) instead of holding shutdown.
        var lease = await SessionLease.AcquireAsync(session, cancellationToken, _lifetime.ApplicationStopping);
        if (open.Cursor > session.LastSequence)
        {
            await lease.DisposeAsync();
            throw BatchSelector.Invalid($"{field}.cursor {open.Cursor} is past the last recorded batch {session.LastSequence} of session {session.Id}.");
        }
        if (open.Cursor > 0 || open.SessionId.Length > 0)
        {
            LogResumed(_logger, session.Id, open.Cursor, session.LastSequence);
        }
        return lease;
    }

    /// <summary>The one stream attached to a session; a newer stream of the same session cancels it and waits for it.</summary>
    private sealed class SessionLease : IAsyncDisposable
    {
        private readonly CancellationTokenSource _cts;

        private SessionLease(SessionState session, CancellationTokenSource cts)
        {
            Session = session;
            _cts = cts;
        }

        public SessionState Session { get; }

        public CancellationToken Token => _cts.Token;

        public static async Task<SessionLease> AcquireAsync(SessionState session, CancellationToken cancellationToken, CancellationToken stopping)
        {
            var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
            CancellationTokenSource? previous;
            lock (session)
            {
                previous = session.Attached;
                session.Attached = cts;
            }
            if (previous is not null)
            {
                // A trainer that restarted before its old stream was noticed dead takes over.
                try
                {
                    await previous.CancelAsync();
                }
                catch (ObjectDisposedException)
                {
                    // It ended by itself meanwhile.
                }
            }
            try
            {
                await session.Gate.WaitAsync(cancellationToken);
            }
            catch
            {
                cts.Dispose();
                throw;
            }
            return new SessionLease(session, cts);
        }

        public ValueTask DisposeAsync()
        {
            lock (Session)
            {
                if (ReferenceEquals(Session.Attached, _cts))
                {
                    Session.Attached = null;
                }
            }
            Session.Gate.Release();
            _cts.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} opened for job {Job} with policy {Policy}")]
    private static partial void LogOpened(ILogger logger, string sessionId, string job, Policy policy);

    [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} resumed after {Cursor} (last recorded {Last})")]
    private static partial void LogResumed(ILogger logger, string sessionId, long cursor, long last);
}
