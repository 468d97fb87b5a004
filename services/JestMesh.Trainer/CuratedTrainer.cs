using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;
using Grpc.Net.Client;
using JestMesh.Data;
using JestMesh.Models;
using JestMesh.Protos.V1;
using Polly;
using Polly.Retry;
using TorchSharp;

namespace JestMesh.Trainer;

/// <summary>Where the trainer's time went since its first batch: the data stall is Wait / Wall.</summary>
public sealed class TrainerStats
{
    public int Steps { get; internal set; }

    /// <summary>Seconds blocked on the stream waiting for the next batch or candidate.</summary>
    public double WaitSeconds { get; internal set; }

    /// <summary>Seconds of the learner's no-grad scoring passes.</summary>
    public double ScoreSeconds { get; internal set; }

    /// <summary>Seconds of training steps.</summary>
    public double TrainSeconds { get; internal set; }

    /// <summary>Wall time from the first batch to the last.</summary>
    public double WallSeconds { get; internal set; }

    public double StallFraction => WallSeconds > 0 ? WaitSeconds / WallSeconds : 0;
}

/// <summary>The trainer's ActivitySource and meter.</summary>
public static class TrainerTelemetry
{
    public const string Name = "JestMesh.Trainer";

    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    internal static readonly Histogram<double> Stall = Meter.CreateHistogram<double>("jestmesh.trainer.data_stall", "ms", "Time the learner waited for its next curated batch.");
    internal static readonly Histogram<double> StepTime = Meter.CreateHistogram<double>("jestmesh.trainer.step", "ms", "Scoring plus training time of one step.");
    internal static readonly Counter<long> Reconnects = Meter.CreateCounter<long>("jestmesh.trainer.reconnects", "{reconnect}", "Curate streams reopened after the Selection service went away.");
}

/// <summary>
/// The learner in the JEST loop: opens a Curate session, scores each candidate with the live learner
/// (no grad), trains on each curated batch, acks it, evaluates every K steps and checkpoints model,
/// optimiser and cursor together. Restarted, it resumes from its checkpoint; when the Selection
/// service goes away it reconnects with exponential backoff and resumes its session.
/// </summary>
public sealed partial class CuratedTrainer : IDisposable
{
    private readonly TrainerOptions _options;
    private readonly GrpcChannel _channel;
    private readonly Evaluator? _evaluator;
    private readonly ILogger _logger;
    private readonly SiglipModel _model;
    private readonly ModelTrainer _trainer;
    private readonly ResiliencePipeline _reconnect;
    private readonly Metadata _headers;
    private LearnerState _state;
    private long _firstBatchTimestamp;

    public CuratedTrainer(TrainerOptions options, GrpcChannel channel, Evaluator? evaluator, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(channel);
        _options = options;
        _channel = channel;
        _evaluator = evaluator;
        _logger = logger;
        _headers = new Metadata { { "authorization", $"Bearer {options.ApiKey}" } };
        // Same seed, same initial learner: runs are reproducible and comparable across policies.
        torch.random.manual_seed(unchecked((long)options.Seed));
        _model = SiglipModel.Create(new ModelConfig(), torch.CPU);
        _trainer = new ModelTrainer(_model, new TrainingOptions { TotalSteps = options.Steps, LearningRate = options.LearningRate, WarmupSteps = options.WarmupSteps });
        if (LearnerCheckpoint.TryReadLatest(options.CheckpointDirectory) is { } latest)
        {
            if (latest.State.Job != options.Job)
            {
                throw new InvalidDataException($"checkpoint {latest.Path} belongs to job '{latest.State.Job}', not Trainer:Job '{options.Job}'.");
            }
            LearnerCheckpoint.Restore(latest.Path, _model, _trainer, latest.State);
            _state = latest.State;
            LogRestored(_logger, latest.Path, _state.Step, _state.Cursor, _state.SessionId);
        }
        else
        {
            _state = new LearnerState { Job = options.Job };
        }
        _reconnect = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder()
                    .Handle<RpcException>(e => e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled or StatusCode.Aborted or StatusCode.Unknown or StatusCode.DeadlineExceeded)
                    .Handle<IOException>()
                    .Handle<HttpRequestException>(),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.ReconnectDelay,
                MaxDelay = options.ReconnectMaxDelay,
                MaxRetryAttempts = int.MaxValue,
                OnRetry = args =>
                {
                    TrainerTelemetry.Reconnects.Add(1);
                    LogReconnect(_logger, args.AttemptNumber + 1, args.RetryDelay.TotalMilliseconds, args.Outcome.Exception?.Message ?? "stream ended");
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>Where training stands (as in the last checkpoint once one was written).</summary>
    public LearnerState State => _state;

    public TrainerStats Stats { get; } = new();

    /// <summary>The learner (for evaluation and comparisons).</summary>
    public SiglipModel Model => _model;

    /// <summary>Called after every trained batch (tests and reports use it to account for ids).</summary>
    public Action<CuratedBatch>? BatchTrained { get; set; }

    /// <summary>Trains until Trainer:Steps steps are done, reconnecting as long as it takes.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (_state.Step < _options.Steps)
        {
            await _reconnect.ExecuteAsync(async token => await RunSessionAsync(token), cancellationToken);
        }
        SaveCheckpoint();
        LogFinished(_logger, _state.Step, Stats.StallFraction * 100);
    }

    private async Task RunSessionAsync(CancellationToken cancellationToken)
    {
        var client = new Curation.CurationClient(_channel);
        using var call = client.Curate(_headers, cancellationToken: cancellationToken);
        var open = new SessionOpen
        {
            Job = _options.Job,
            Policy = _options.Policy,
            FilterRatio = _options.FilterRatio,
            Chunks = _options.Chunks,
            Gain = _options.Gain,
            Seed = _options.Seed,
            Greedy = _options.Greedy,
            Loss = LossKind.Sigmoid,
            SessionId = _state.SessionId,
            Cursor = _state.Cursor,
        };
        await call.RequestStream.WriteAsync(new CurateRequest { Open = open }, cancellationToken);
        var candidates = new Queue<Candidate>();
        // Scores sent whose batch has not arrived yet.
        var outstanding = 0;
        var responses = call.ResponseStream;
        while (_state.Step < _options.Steps)
        {
            if (outstanding == 0 && candidates.Count > 0)
            {
                // The learner is idle and the next candidate is already here: score it now.
                await SendScoresAsync(call, candidates.Dequeue(), cancellationToken);
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
                TrainerTelemetry.Stall.Record(waited.TotalMilliseconds);
            }
            var response = responses.Current;
            switch (response.KindCase)
            {
                case CurateResponse.KindOneofCase.Opened:
                    OnOpened(response.Opened);
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
                    // Trainer:ScoreAhead: score the next candidates with the learner as it is now,
                    // before this step, so Selection picks their batches while this one trains.
                    while (outstanding < _options.ScoreAhead && candidates.Count > 0 && _state.Step + 1 + outstanding < _options.Steps)
                    {
                        await SendScoresAsync(call, candidates.Dequeue(), cancellationToken);
                        outstanding++;
                    }
                    TrainOn(response.Batch);
                    await call.RequestStream.WriteAsync(new CurateRequest { Ack = new Ack { Sequence = response.Batch.Sequence } }, cancellationToken);
                    break;
                default:
                    throw new InvalidDataException($"unknown CurateResponse '{response.KindCase}'.");
            }
        }
        await call.RequestStream.CompleteAsync();
    }

    private async Task SendScoresAsync(AsyncDuplexStreamingCall<CurateRequest, CurateResponse> call, Candidate candidate, CancellationToken cancellationToken) =>
        await call.RequestStream.WriteAsync(new CurateRequest { Scores = Score(candidate) }, cancellationToken);

    private void OnOpened(SessionOpened opened)
    {
        if (_state.SessionId.Length == 0)
        {
            // Make the new session durable before training on it: a crash now resumes this session
            // instead of opening another and orphaning what was recorded for this one.
            _state = _state with { SessionId = opened.SessionId };
            SaveCheckpoint();
        }
        else if (opened.SessionId != _state.SessionId)
        {
            throw new InvalidDataException($"Selection resumed session '{opened.SessionId}', the checkpoint holds '{_state.SessionId}'.");
        }
        LogOpened(_logger, opened.SessionId, opened.ResumeAfter);
    }

    private LearnerScores Score(Candidate candidate)
    {
        var started = Stopwatch.GetTimestamp();
        var (pixels, tokens) = Inputs(candidate.Examples, $"candidate {candidate.SuperBatchId}");
        var n = candidate.Examples.Count;
        var embeddings = _model.Embed(pixels, n, tokens);
        var scores = new LearnerScores
        {
            SuperBatchId = candidate.SuperBatchId,
            ImageEmbeddings = Protos.V1.Tensor.FromFloat32(embeddings.Image, n, embeddings.Dim),
            TextEmbeddings = Protos.V1.Tensor.FromFloat32(embeddings.Text, n, embeddings.Dim),
            Alpha = embeddings.Alpha,
            Beta = embeddings.Beta,
            LearnerStep = _state.Step,
        };
        Stats.ScoreSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
        return scores;
    }

    private void TrainOn(CuratedBatch batch)
    {
        if (batch.Sequence != _state.Cursor + 1)
        {
            // Never train past a gap or twice on a batch: that would silently break the accounting.
            throw new InvalidDataException($"session {batch.SessionId} sent batch {batch.Sequence} after the trainer's cursor {_state.Cursor}: a gap or a repeat.");
        }
        var parent = ActivityContext.TryParse(batch.Traceparent, null, out var context) ? context : default;
        using var activity = TrainerTelemetry.Source.StartActivity("trainer.step", ActivityKind.Consumer, parent,
            links: parent == default ? null : [new ActivityLink(parent)]);
        activity?.SetTag("jestmesh.sequence", batch.Sequence);
        activity?.SetTag("jestmesh.super_batch.id", batch.SuperBatchId);
        var started = Stopwatch.GetTimestamp();
        if (_firstBatchTimestamp == 0)
        {
            _firstBatchTimestamp = started;
        }
        var (pixels, tokens) = Inputs(batch.Examples, $"batch {batch.Sequence}");
        float loss;
        using (var scope = torch.NewDisposeScope())
        {
            var images = TensorConvert.Images(pixels, batch.Examples.Count);
            var tokenTensor = TensorConvert.Tokens(tokens, _model.Config.MaxTokens);
            loss = _trainer.TrainStep(() => _model.Loss(images, tokenTensor));
        }
        activity?.SetTag("jestmesh.loss", loss);
        Stats.TrainSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds;
        _state = _state with { Step = _trainer.Step, Cursor = batch.Sequence };
        Stats.Steps++;
        Stats.WallSeconds = Stopwatch.GetElapsedTime(_firstBatchTimestamp).TotalSeconds;
        TrainerTelemetry.StepTime.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        BatchTrained?.Invoke(batch);
        if (_evaluator is not null && _options.EvalEvery > 0 && _state.Step % _options.EvalEvery == 0)
        {
            var result = _evaluator.Evaluate(_model);
            _state.Evals.Add(EvalPoint.At(_state.Step, result));
            LogEvaluated(_logger, _state.Step, result.ZeroShotAccuracy, result.RecallAt1);
        }
        if (_state.Step % _options.CheckpointEvery == 0)
        {
            SaveCheckpoint();
        }
    }

    private void SaveCheckpoint() => LearnerCheckpoint.Save(_options.CheckpointDirectory, _model, _trainer, _state with { Evals = [.. _state.Evals] });

    private static (byte[] Pixels, List<int[]> Tokens) Inputs(Google.Protobuf.Collections.RepeatedField<Example> examples, string what)
    {
        var pixels = new byte[examples.Count * ImageSet.PixelsPerImage];
        var tokens = new List<int[]>(examples.Count);
        for (var i = 0; i < examples.Count; i++)
        {
            var image = examples[i].Image;
            if (image.Length != ImageSet.PixelsPerImage)
            {
                throw new InvalidDataException($"{what} examples[{i}] (id {examples[i].Id}): image has {image.Length} bytes, expected {ImageSet.PixelsPerImage}.");
            }
            image.Span.CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens.Add([.. examples[i].CaptionTokens]);
        }
        return (pixels, tokens);
    }

    public void Dispose()
    {
        _trainer.Dispose();
        _model.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Restored checkpoint {Path}: step {Step}, cursor {Cursor}, session {SessionId}")]
    private static partial void LogRestored(ILogger logger, string path, int step, long cursor, string sessionId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Curate session {SessionId} open, resuming after batch {Cursor}")]
    private static partial void LogOpened(ILogger logger, string sessionId, long cursor);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Curate stream lost; reconnect attempt {Attempt} in {DelayMs:0} ms ({Reason})")]
    private static partial void LogReconnect(ILogger logger, int attempt, double delayMs, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Step {Step}: zero-shot {ZeroShot:P1}, R@1 {RecallAt1:P1}")]
    private static partial void LogEvaluated(ILogger logger, int step, double zeroShot, double recallAt1);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training finished at step {Step}; data stall {StallPercent:0.0}%")]
    private static partial void LogFinished(ILogger logger, int step, double stallPercent);
}
