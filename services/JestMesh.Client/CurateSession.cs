using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;
using Grpc.Net.Client;
using JestMesh.Protos;
using JestMesh.Protos.V1;
using JestMesh.Tls;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace JestMesh.Client;

/// <summary>Where a session's time went since its first batch: the data stall is Wait / Wall.</summary>
public sealed class CurateStats
{
    /// <summary>Batches trained on in this process.</summary>
    public int Batches { get; internal set; }

    /// <summary>Seconds blocked on the stream waiting for the next batch or candidate.</summary>
    public double WaitSeconds { get; internal set; }

    /// <summary>Seconds in the learner's scoring.</summary>
    public double ScoreSeconds { get; internal set; }

    /// <summary>Seconds in the learner's training (what <see cref="ICurateLearner.Train"/> took).</summary>
    public double TrainSeconds { get; internal set; }

    /// <summary>Wall time from the first batch to the last.</summary>
    public double WallSeconds { get; internal set; }

    public long Reconnects { get; internal set; }

    public double StallFraction => WallSeconds > 0 ? WaitSeconds / WallSeconds : 0;
}

/// <summary>
/// The Curate protocol for .NET trainers: opens (or resumes) a session, hands every candidate to the
/// learner for scoring, every curated batch to the learner for training, acks it, and keeps the
/// cursor (the last batch consumed, never one prefetched). When the service goes away it reconnects
/// with exponential backoff and resumes after the cursor, so the learner sees no gap and no repeat.
/// </summary>
public sealed partial class CurateSession
{
    private static readonly ActivitySource Source = new(Telemetry.Sources.Trainer);
    private static readonly Meter Meter = new(Telemetry.Sources.Trainer);
    private static readonly Histogram<double> Stall = Meter.CreateHistogram<double>(Telemetry.Metrics.TrainerDataStall, "ms", "Time the learner waited for its next curated batch.");
    private static readonly Histogram<double> StepTime = Meter.CreateHistogram<double>(Telemetry.Metrics.TrainerStep, "ms", "Scoring plus training time of one step.");
    private static readonly Counter<long> ReconnectCount = Meter.CreateCounter<long>(Telemetry.Metrics.TrainerReconnects, "{reconnect}", "Curate streams reopened after the Selection service went away.");

    private readonly Protos.V1.Curation.CurationClient _client;
    private readonly CurateSettings _settings;
    private readonly Metadata _headers;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _reconnect;
    private long _firstBatchTimestamp;

    /// <summary>A session on <paramref name="channel"/>, resuming <paramref name="sessionId"/> after <paramref name="cursor"/> (empty and 0 open a new one).</summary>
    public CurateSession(GrpcChannel channel, CurateSettings settings, ILogger logger, string sessionId = "", long cursor = 0)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(logger);
        _client = new Protos.V1.Curation.CurationClient(channel);
        _settings = settings;
        _logger = logger;
        _headers = new Metadata { { "authorization", $"Bearer {settings.ApiKey}" } };
        SessionId = sessionId;
        Cursor = cursor;
        _reconnect = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                // A certificate the TLS settings refuse (UntrustedPeerException inside) is a configuration
                // error: retrying cannot fix it, so it ends the session with its message.
                ShouldHandle = new PredicateBuilder()
                    .Handle<RpcException>(e => e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled or StatusCode.Aborted or StatusCode.Unknown or StatusCode.DeadlineExceeded
                        && UntrustedPeerException.Find(e.Status.DebugException) is null)
                    .Handle<IOException>()
                    .Handle<HttpRequestException>(e => UntrustedPeerException.Find(e) is null),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = settings.ReconnectDelay,
                MaxDelay = settings.ReconnectMaxDelay,
                MaxRetryAttempts = int.MaxValue,
                OnRetry = args =>
                {
                    Stats.Reconnects++;
                    ReconnectCount.Add(1);
                    LogReconnect(_logger, args.AttemptNumber + 1, args.RetryDelay.TotalMilliseconds, args.Outcome.Exception?.Message ?? "stream ended");
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>The session's id (empty until the service opened one).</summary>
    public string SessionId { get; private set; }

    /// <summary>SHA-256 of the reference behind the session's scores, as Selection's last <c>opened</c> said ("" until then).</summary>
    public string ReferenceSha256 { get; private set; } = "";

    /// <summary>Sequence of the last batch the learner consumed: what a checkpoint must store.</summary>
    public long Cursor { get; private set; }

    public CurateStats Stats { get; } = new();

    /// <summary>Runs the session until the learner wants no more batches, reconnecting as long as it takes.</summary>
    public async Task RunAsync(ICurateLearner learner, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(learner);
        while (learner.Remaining > 0)
        {
            await _reconnect.ExecuteAsync(async token => await RunStreamAsync(learner, token), cancellationToken);
        }
    }

    private async Task RunStreamAsync(ICurateLearner learner, CancellationToken cancellationToken)
    {
        using var call = _client.Curate(_headers, cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(new CurateRequest { Open = _settings.ToOpen(SessionId, Cursor) }, cancellationToken);
        var candidates = new Queue<Candidate>();
        // Scores sent whose batch has not arrived yet.
        var outstanding = 0;
        var responses = call.ResponseStream;
        while (learner.Remaining > 0)
        {
            if (outstanding == 0 && candidates.Count > 0)
            {
                // The learner is idle and the next candidate is already here: score it now.
                await SendScoresAsync(call, learner, candidates.Dequeue(), cancellationToken);
                outstanding++;
                continue;
            }
            var waitStarted = Stopwatch.GetTimestamp();
            if (!await responses.MoveNext(cancellationToken))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "the Selection service ended the Curate stream."));
            }
            var waited = Stopwatch.GetElapsedTime(waitStarted);
            if (_firstBatchTimestamp != 0)
            {
                Stats.WaitSeconds += waited.TotalSeconds;
                Stall.Record(waited.TotalMilliseconds);
            }
            var response = responses.Current;
            switch (response.KindCase)
            {
                case CurateResponse.KindOneofCase.Opened:
                    OnOpened(learner, response.Opened);
                    break;
                case CurateResponse.KindOneofCase.Candidate:
                    candidates.Enqueue(response.Candidate);
                    break;
                case CurateResponse.KindOneofCase.Batch:
                    if (!response.Batch.Replayed)
                    {
                        // Learner-free policies send batches without candidates: never below zero.
                        outstanding = Math.Max(0, outstanding - 1);
                    }
                    // ScoreAhead: score the next candidates with the learner as it is now, before
                    // this step, so Selection picks their batches while this one trains.
                    while (outstanding < _settings.ScoreAhead && candidates.Count > 0 && outstanding + 1 < learner.Remaining)
                    {
                        await SendScoresAsync(call, learner, candidates.Dequeue(), cancellationToken);
                        outstanding++;
                    }
                    Consume(learner, response.Batch);
                    await call.RequestStream.WriteAsync(new CurateRequest { Ack = new Ack { Sequence = response.Batch.Sequence } }, cancellationToken);
                    break;
                default:
                    throw new InvalidDataException($"unknown CurateResponse '{response.KindCase}'.");
            }
        }
        await call.RequestStream.CompleteAsync();
    }

    private async Task SendScoresAsync(AsyncDuplexStreamingCall<CurateRequest, CurateResponse> call, ICurateLearner learner, Candidate candidate, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var scores = learner.Score(candidate);
        Stats.ScoreSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
        await call.RequestStream.WriteAsync(new CurateRequest { Scores = scores }, cancellationToken);
    }

    private void OnOpened(ICurateLearner learner, SessionOpened opened)
    {
        if (SessionId.Length == 0)
        {
            SessionId = opened.SessionId;
            learner.SessionOpened(opened.SessionId);
        }
        else if (opened.SessionId != SessionId)
        {
            throw new InvalidDataException($"Selection resumed session '{opened.SessionId}', the client holds '{SessionId}'.");
        }
        ReferenceSha256 = opened.ReferenceCheckpointSha256;
        LogOpened(_logger, opened.SessionId, opened.ResumeAfter);
    }

    private void Consume(ICurateLearner learner, CuratedBatch batch)
    {
        if (batch.Sequence != Cursor + 1)
        {
            // Never train past a gap or twice on a batch: that would silently break the accounting.
            throw new InvalidDataException($"session {batch.SessionId} sent batch {batch.Sequence} after the cursor {Cursor}: a gap or a repeat.");
        }
        var parent = ActivityContext.TryParse(batch.Traceparent, null, out var context) ? context : default;
        using var activity = Source.StartActivity(Telemetry.Spans.TrainerStep, ActivityKind.Consumer, parent,
            links: parent == default ? null : [new ActivityLink(parent)]);
        activity?.SetTag(Telemetry.Attributes.Sequence, batch.Sequence);
        activity?.SetTag(Telemetry.Attributes.SuperBatchId, batch.SuperBatchId);
        var started = Stopwatch.GetTimestamp();
        if (_firstBatchTimestamp == 0)
        {
            _firstBatchTimestamp = started;
        }
        learner.Train(batch);
        Cursor = batch.Sequence;
        Stats.TrainSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
        Stats.Batches++;
        Stats.WallSeconds = Stopwatch.GetElapsedTime(_firstBatchTimestamp).TotalSeconds;
        StepTime.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Curate session {SessionId} open, resuming after batch {Cursor}")]
    private static partial void LogOpened(ILogger logger, string sessionId, long cursor);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Curate stream lost; reconnect attempt {Attempt} in {DelayMs:0} ms ({Reason})")]
    private static partial void LogReconnect(ILogger logger, int attempt, double delayMs, string reason);
}
