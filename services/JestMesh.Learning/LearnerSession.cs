using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Models;
using TorchSharp;

namespace JestMesh.Learning;

/// <summary>How the learner is built and trained: one record for the Trainer service and the in-process loop.</summary>
public sealed record LearnerOptions
{
    /// <summary>T: optimiser steps of the run (the learning-rate schedule's length).</summary>
    public required int Steps { get; init; }

    /// <summary>Seed of the learner's initial weights.</summary>
    public ulong Seed { get; init; }

    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Warm-up steps of the schedule; null = min(100, max(1, T/10)).</summary>
    public int? WarmupSteps { get; init; }

    /// <summary>Candidates per no-grad scoring pass (bounds the activations held at once).</summary>
    public int ScoringBatchSize { get; init; } = 512;

    /// <summary>
    /// Image side the learner scores candidates at (28 = exact; 14 or 7 = cheap scoring as in Flexi-JEST:
    /// score at low resolution, train at full). Training and evaluation always use 28×28.
    /// </summary>
    public int ScoreResolution { get; init; } = ImageSet.Side;

    /// <summary>Evaluate every this-many steps and at the last step; 0 = never.</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>The warm-up the schedule uses.</summary>
    public int Warmup => WarmupSteps ?? Math.Min(100, Math.Max(1, Steps / 10));
}

/// <summary>
/// The live learner of a JEST run: the model, its optimiser and schedule, scoring candidates (no
/// grad, in passes of <see cref="LearnerOptions.ScoringBatchSize"/>), training on selected batches,
/// evaluating when due, and checkpointing all of it with the caller's cursor. Every call is
/// synchronous and keeps its tensors inside its own dispose scope (TorchSharp scopes belong to
/// the calling thread), so async callers may await between calls but never inside one.
/// </summary>
public sealed class LearnerSession : IDisposable
{
    private readonly ModelTrainer _trainer;
    private readonly Evaluator? _evaluator;

    /// <summary>A new learner seeded with <see cref="LearnerOptions.Seed"/>; <paramref name="evaluator"/> null never evaluates.</summary>
    public LearnerSession(LearnerOptions options, Evaluator? evaluator)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!TensorConvert.IsScoringResolution(options.ScoreResolution))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ScoreResolution, "ScoreResolution must be 7, 14 or 28.");
        }

        Options = options;
        _evaluator = evaluator;
        // Same seed, same initial learner: runs are reproducible and comparable across policies.
        torch.random.manual_seed(unchecked((long)options.Seed));
        Model = SiglipModel.Create(new ModelConfig(), torch.CPU);
        _trainer = new ModelTrainer(Model, new TrainingOptions
        {
            TotalSteps = options.Steps,
            WarmupSteps = options.Warmup,
            LearningRate = options.LearningRate,
        });
    }

    public LearnerOptions Options { get; }

    public SiglipModel Model { get; }

    /// <summary>Optimiser steps taken.</summary>
    public int Step => _trainer.Step;

    /// <summary>True when the step just taken is one to evaluate at (every EvalEvery steps and the last one).</summary>
    public bool EvaluationDue => _evaluator is not null && Options.EvalEvery > 0 && Step > 0
        && (Step % Options.EvalEvery == 0 || Step == Options.Steps);

    /// <summary>The learner's no-grad view of <paramref name="candidates"/> for the curation step, at <see cref="LearnerOptions.ScoreResolution"/>.</summary>
    public ContrastiveEmbeddings Score(ExampleBatch candidates) => Score(candidates, Options.ScoreResolution);

    /// <summary>The learner's no-grad view of <paramref name="candidates"/> with images at <paramref name="resolution"/> (7, 14 or 28).</summary>
    public ContrastiveEmbeddings Score(ExampleBatch candidates, int resolution)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var e = Model.Embed(candidates.Pixels, candidates.Count, candidates.Tokens, Options.ScoringBatchSize, resolution);
        return new ContrastiveEmbeddings(e.Image, e.Text, e.Count, e.Dim, e.Alpha, e.Beta);
    }

    /// <summary>One optimiser step on <paramref name="batch"/> with uniform weights (JEST §A.2); returns the loss.</summary>
    public float Train(ExampleBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var scope = torch.NewDisposeScope();
        var images = TensorConvert.Images(batch.Pixels, batch.Count);
        var tokens = TensorConvert.Tokens(batch.Tokens, Model.Config.MaxTokens);
        return _trainer.TrainStep(() => Model.Loss(images, tokens));
    }

    /// <summary>Evaluates the learner on the test set now.</summary>
    public EvalPoint Evaluate()
    {
        var evaluator = _evaluator ?? throw new InvalidOperationException("this learner session has no evaluator.");
        return EvalPoint.At(Step, evaluator.Evaluate(Model));
    }

    /// <summary>Writes model, optimiser and <paramref name="state"/> as one checkpoint (atomically).</summary>
    public void Save(string directory, LearnerState state) => LearnerCheckpoint.Save(directory, Model, _trainer, state);

    /// <summary>Restores the latest checkpoint in <paramref name="directory"/>; null (and nothing changed) when there is none.</summary>
    public LearnerState? TryRestore(string directory)
    {
        if (LearnerCheckpoint.TryReadLatest(directory) is not { } latest)
        {
            return null;
        }
        LearnerCheckpoint.Restore(latest.Path, Model, _trainer, latest.State);
        return latest.State;
    }

    public void Dispose()
    {
        _trainer.Dispose();
        Model.Dispose();
    }
}
