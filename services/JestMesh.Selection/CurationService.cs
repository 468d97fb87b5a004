using Grpc.Core;
using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>
/// The Curation gRPC service: sessions over the job feeds, every batch recorded before it is sent
/// (<see cref="SessionPump"/>), replays after a cursor, backpressure through the stream. Failures
/// are domain exceptions; <see cref="ErrorMappingInterceptor"/> turns them into statuses.
/// </summary>
public sealed partial class CurationService(SessionStore store, JobFeeds feeds, IOptions<SelectionOptions> options, IHostApplicationLifetime lifetime, ILogger<CurationService> logger)
    : Protos.V1.Curation.CurationBase
{
    private readonly SelectionOptions _options = options.Value;

    public override async Task StreamBatches(StreamBatchesRequest request, IServerStreamWriter<CuratedBatch> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        if (request.Session is null)
        {
            throw new InvalidCurationInputException("session is missing.");
        }
        if (request.MaxBatches < 0)
        {
            throw new InvalidCurationInputException($"max_batches {request.MaxBatches} must be ≥ 0 (0 = until cancelled).");
        }
        await using var stream = await OpenAsync(request.Session, learnerFree: true, "session", context.CancellationToken);
        var token = stream.Token;
        var sent = 0;
        await foreach (var batch in store.ReplayAsync(stream.Session, request.Session.Cursor, token))
        {
            using (SessionPump.StartSend(batch))
            {
                await responseStream.WriteAsync(batch, token);
            }
            if (++sent == request.MaxBatches)
            {
                return;
            }
        }
        await using var pump = new SessionPump(store, stream.Session, stream.Feed);
        // WriteAsync completes only when HTTP/2 flow control lets the batch go: a slow client stops
        // this loop, and with it the feed's prefetch and the broker.
        for (; request.MaxBatches == 0 || sent < request.MaxBatches; sent++)
        {
            await pump.TakeAsync(token);
            await pump.CurateOldestAsync(null, 0, batch => responseStream.WriteAsync(batch, token), token);
        }
    }

    public override async Task Curate(IAsyncStreamReader<CurateRequest> requestStream, IServerStreamWriter<CurateResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        if (!await requestStream.MoveNext(context.CancellationToken))
        {
            return;
        }
        if (requestStream.Current.KindCase != CurateRequest.KindOneofCase.Open)
        {
            throw new InvalidCurationInputException($"the first CurateRequest must be 'open', got '{requestStream.Current.KindCase}'.");
        }
        var open = requestStream.Current.Open;
        await using var stream = await OpenAsync(open, learnerFree: false, "open", context.CancellationToken);
        var token = stream.Token;
        await responseStream.WriteAsync(new CurateResponse { Opened = stream.Opened(open.Cursor) }, token);
        var sent = open.Cursor;
        await foreach (var batch in store.ReplayAsync(stream.Session, open.Cursor, token))
        {
            using (SessionPump.StartSend(batch))
            {
                await responseStream.WriteAsync(new CurateResponse { Batch = batch }, token);
            }
            sent = batch.Sequence;
        }
        var loop = new CurateLoop(requestStream, responseStream, new SessionPump(store, stream.Session, stream.Feed), stream.Feed, stream.Settings, sent, open.Cursor, token);
        await using (loop.Pump)
        {
            await (stream.Settings.NeedsLearner ? loop.WithLearnerAsync(_options.CandidatesAhead) : loop.LearnerFreeAsync(_options.BatchesAhead));
        }
    }

    /// <summary>
    /// Validates the request, finds (or waits for) the job, refuses settings that cannot fit its
    /// super-batches, creates or resumes the session and attaches this stream to it.
    /// </summary>
    private async Task<AttachedStream> OpenAsync(SessionOpen open, bool learnerFree, string field, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + _options.UnknownJobWait;
        try
        {
            open.Validate(field, learnerFree);
        }
        catch (InvalidDataException ex)
        {
            throw RpcErrors.Invalid(ex);
        }
        await store.Loaded.WaitAsync(cancellationToken);
        var job = open.IsNew ? open.Job : await JobOfAsync(open, field, cancellationToken);
        // A resume of a session the log has: its job exists, whatever the broker says meanwhile.
        var onRecord = !open.IsNew && store.JobOf(open.SessionId) is not null;
        var membership = await feeds.JoinAsync(job, field, deadline, onRecord, cancellationToken);
        try
        {
            var feed = membership.Feed;
            SessionState? existing = null;
            if (!open.IsNew)
            {
                // This replica holds the job now, and only a job's holder opens its sessions; its
                // takeover read the log up to its own marker: a session of the job it does not know
                // was never opened, or has left the log. Nothing is appended to find that out.
                existing = await store.FindAsync(open.SessionId, cancellationToken)
                    ?? throw SelectionException.NotFound($"{field}.session_id {ClientText.Quote(open.SessionId)} is not a session of job {ClientText.Quote(job)} (never opened, or expired from the batch log after Selection:LogMaxAge).");
                if (existing.LearnerFree != learnerFree)
                {
                    throw new InvalidCurationInputException($"{field}.session_id {ClientText.Quote(open.SessionId)} is a {(existing.LearnerFree ? "StreamBatches" : "Curate")} session.");
                }
                try
                {
                    open.ValidateResume(existing.Settings, field);
                }
                catch (InvalidDataException ex)
                {
                    throw RpcErrors.Invalid(ex);
                }
            }
            var settings = existing?.Settings ?? open;
            var curation = BatchSelector.ToCurationSettings(settings);
            if (feed.LastSuperBatchSize == 0 && existing is null)
            {
                // The first session of a job learns N, b and the reference from its first super-batch.
                var left = deadline - DateTime.UtcNow;
                if (left > TimeSpan.Zero)
                {
                    await Task.WhenAny(feed.FirstReceived, Task.Delay(left, cancellationToken));
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
            var n = feed.LastSuperBatchSize;
            if (n > 0 && curation.BatchSizeFor(n) % curation.Chunks != 0)
            {
                throw new CurationPreconditionException($"{field}.chunks {curation.Chunks} does not divide b = {curation.BatchSizeFor(n)}, the batch {field}.filter_ratio {curation.FilterRatio} gives for the job's super-batches of N = {n}.");
            }
            var session = existing ?? await CreateAsync(settings, learnerFree, feed, cancellationToken);
            // A stopping replica ends its streams at once (clients resume elsewhere) instead of holding shutdown.
            var lease = await store.AttachAsync(session, cancellationToken, lifetime.ApplicationStopping);
            // The session evicted and rebuilt meanwhile is the lease's.
            session = lease.Session;
            if (open.Cursor > session.LastSequence)
            {
                await lease.DisposeAsync();
                throw new InvalidCurationInputException($"{field}.cursor {open.Cursor} is past the last recorded batch {session.LastSequence} of session {session.Id}.");
            }
            if (!open.IsNew)
            {
                LogResumed(logger, session.Id, open.Cursor, session.LastSequence);
            }
            return new AttachedStream(lease, membership, curation, n > 0 ? curation.BatchSizeFor(n) : 0, n, n > 0 ? feed.LastReferenceSha256 : "");
        }
        catch
        {
            membership.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The job a resume belongs to: the session's, when this replica knows it (in memory or evicted);
    /// else the job the resume names. Only a resume that names none, of a session this replica does
    /// not know, reads the log to its end (a marker shared by such resumes, at most one a second) to find it.
    /// </summary>
    private async Task<string> JobOfAsync(SessionOpen open, string field, CancellationToken cancellationToken)
    {
        if (store.JobOf(open.SessionId) is { } known)
        {
            return known;
        }
        if (open.Job.Length > 0)
        {
            return open.Job;
        }
        // Opened on another replica since this one last read the log: read on, then look again.
        await store.ReadToEndForLookupAsync(cancellationToken);
        return store.JobOf(open.SessionId)
            ?? throw SelectionException.NotFound($"{field}.session_id {ClientText.Quote(open.SessionId)} is not a session of this service (or it expired from the batch log).");
    }

    private async Task<SessionState> CreateAsync(SessionOpen settings, bool learnerFree, JobFeed feed, CancellationToken cancellationToken)
    {
        try
        {
            var session = await store.CreateAsync(settings, learnerFree, cancellationToken);
            // `opened` goes out only for a session whose record no takeover can follow (see RecordAsync).
            await feed.ConfirmHeldAsync($"new session {session.Id}", cancellationToken);
            LogOpened(logger, session.Id, session.Job, settings.Policy);
            return session;
        }
        catch (Exception ex) when (ex is PublishRejectedException or PublishUnroutableException)
        {
            throw SelectionException.Unavailable($"the batch log refused the new session's record: {ex.Message}; retry.", ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} opened for job {Job} with policy {Policy}")]
    private static partial void LogOpened(ILogger logger, string sessionId, string job, Policy policy);

    [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} resumed after {Cursor} (last recorded {Last})")]
    private static partial void LogResumed(ILogger logger, string sessionId, long cursor, long last);
}
