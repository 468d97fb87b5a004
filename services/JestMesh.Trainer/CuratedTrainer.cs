using Grpc.Net.Client;
using JestMesh.Client;
using JestMesh.Curation;
using JestMesh.Learning;
using JestMesh.Models;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Trainer;

/// <summary>
/// The Trainer host's learner in the JEST loop: the learning core's <see cref="LearnerSession"/>
/// behind the client library's <see cref="CurateSession"/>. It scores each candidate, trains on each
/// curated batch, evaluates when due, checkpoints model, optimiser and cursor together and writes
/// the run summary (<see cref="RunSummaryFile"/>). Restarted, it resumes from its checkpoint.
/// </summary>
public sealed partial class CuratedTrainer : ICurateLearner, IDisposable
{
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;
    private readonly LearnerSession _learner;
    private readonly CurateSession _session;
    private readonly List<double> _stepWallMs = [];
    private LearnerState _state;
    private double _evalSeconds;
    private long _lastStepEnd;

    public CuratedTrainer(TrainerOptions options, GrpcChannel channel, Evaluator? evaluator, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(channel);
        _options = options;
        _logger = logger;
        _learner = new LearnerSession(options.ToLearnerOptions(), evaluator);
        if (_learner.TryRestore(options.CheckpointDirectory) is { } restored)
        {
            if (restored.Job != options.Job)
            {
                _learner.Dispose();
                throw new InvalidDataException($"the checkpoint in {options.CheckpointDirectory} belongs to job '{restored.Job}', not Trainer:Job '{options.Job}'.");
            }
            _state = restored;
            LogRestored(_logger, options.CheckpointDirectory, _state.Step, _state.Cursor, _state.SessionId);
        }
        else
        {
            _state = new LearnerState { Job = options.Job };
        }
        _session = new CurateSession(channel, options.ToCurateSettings(), logger, _state.SessionId, _state.Cursor);
    }

    /// <summary>Where training stands (as in the last checkpoint once one was written).</summary>
    public LearnerState State => _state;

    public CurateStats Stats => _session.Stats;

    /// <summary>The learner (for evaluation and comparisons).</summary>
    public SiglipModel Model => _learner.Model;

    /// <summary>Called after every trained batch (tests and reports use it to account for ids).</summary>
    public Action<CuratedBatch>? BatchTrained { get; set; }

    long ICurateLearner.Remaining => _options.Steps - _state.Step;

    /// <summary>Trains until Trainer:Steps steps are done, reconnecting as long as it takes.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await _session.RunAsync(this, cancellationToken);
        Save(finished: true);
        LogFinished(_logger, _state.Step, Stats.StallFraction * 100);
    }

    void ICurateLearner.SessionOpened(string sessionId)
    {
        // Make the new session durable before training on it: a crash now resumes this session
        // instead of opening another and orphaning what was recorded for this one.
        _state = _state with { SessionId = sessionId };
        Save(finished: false);
    }

    LearnerScores ICurateLearner.Score(Candidate candidate)
    {
        var (ids, pixels, tokens) = ExampleArrays.Of(candidate.Examples, $"candidate {candidate.SuperBatchId}");
        return LearnerScores.Of(candidate.SuperBatchId, _learner.Score(new ExampleBatch(ids, pixels, tokens)), _state.Step);
    }

    void ICurateLearner.Train(CuratedBatch batch)
    {
        var (ids, pixels, tokens) = ExampleArrays.Of(batch.Examples, $"batch {batch.Sequence}");
        _learner.Train(new ExampleBatch(ids, pixels, tokens));
        _state = _state with { Step = _learner.Step, Cursor = batch.Sequence };
        _state.SuperBatchIds.Add(batch.SuperBatchId);
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_lastStepEnd != 0)
        {
            _stepWallMs.Add(System.Diagnostics.Stopwatch.GetElapsedTime(_lastStepEnd, now).TotalMilliseconds);
        }
        BatchTrained?.Invoke(batch);
        var evaluated = false;
        if (_learner.EvaluationDue)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var point = _learner.Evaluate();
            _evalSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
            _state.Evals.Add(point);
            evaluated = true;
            LogEvaluated(_logger, point.Step, point.ZeroShotAcc, point.RAt1);
        }
        if (_state.Step % _options.CheckpointEvery == 0)
        {
            Save(finished: false);
        }
        else if (evaluated)
        {
            WriteSummary(finished: false);
        }
        // The next step's wall time starts here: evaluation and checkpoints are not the step's.
        _lastStepEnd = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    private void Save(bool finished)
    {
        _learner.Save(_options.CheckpointDirectory, _state with { Evals = [.. _state.Evals], SuperBatchIds = [.. _state.SuperBatchIds] });
        WriteSummary(finished);
    }

    private void WriteSummary(bool finished)
    {
        var stats = Stats;
        var summary = new RunSummary
        {
            SchemaVersion = RunSummaryFile.SchemaVersion,
            Job = _options.Job,
            SessionId = _state.SessionId,
            Policy = Policies.Name(_options.Policy.ToSelectionPolicy()),
            FilterRatio = _options.FilterRatio,
            Chunks = _options.Chunks,
            Gain = _options.Gain,
            Seed = _options.Seed,
            Greedy = _options.Greedy,
            Steps = _options.Steps,
            Step = _state.Step,
            Finished = finished && _state.Step >= _options.Steps,
            Cursor = _state.Cursor,
            WallSeconds = stats.WallSeconds,
            WaitSeconds = stats.WaitSeconds,
            ScoreSeconds = stats.ScoreSeconds,
            TrainSeconds = stats.TrainSeconds - _evalSeconds,
            EvalSeconds = _evalSeconds,
            DataStall = stats.StallFraction,
            Reconnects = stats.Reconnects,
            WrittenUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        };
        summary.Evaluations.Add(_state.Evals.Select(e => new RunEvaluation { Step = e.Step, ZeroShotAcc = e.ZeroShotAcc, RAt1 = e.RAt1 }));
        summary.StepWallMs.Add(_stepWallMs);
        summary.TrainedSuperBatchIds.Add(_state.SuperBatchIds);
        Directory.CreateDirectory(_options.CheckpointDirectory);
        RunSummaryFile.Write(Path.Combine(_options.CheckpointDirectory, RunSummaryFile.FileName), summary);
    }

    public void Dispose() => _learner.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Restored checkpoint in {Directory}: step {Step}, cursor {Cursor}, session {SessionId}")]
    private static partial void LogRestored(ILogger logger, string directory, int step, long cursor, string sessionId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Step {Step}: zero-shot {ZeroShot:P1}, R@1 {RecallAt1:P1}")]
    private static partial void LogEvaluated(ILogger logger, int step, double zeroShot, double recallAt1);

    [LoggerMessage(Level = LogLevel.Information, Message = "Training finished at step {Step}; data stall {StallPercent:0.0}%")]
    private static partial void LogFinished(ILogger logger, int step, double stallPercent);
}
