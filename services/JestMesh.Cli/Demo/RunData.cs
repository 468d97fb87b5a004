using JestMesh.Curation;

namespace JestMesh.Cli.Demo;

/// <summary>One evaluation of a learner on the test set.</summary>
internal sealed record EvalRow(int Step, double ZeroShotAcc, double RAt1);

/// <summary>
/// Where a trainer's time went, seconds: wall (from its first batch), waiting on the stream for data (a cold Scoring
/// shows here), the learner's own work (scoring passes + training steps) and evaluation, over <paramref name="Steps"/> steps;
/// <paramref name="ScoreS"/> is the scoring passes' part of the learner's work, where it was measured apart.
/// </summary>
internal sealed record TrainerTime(double WallS, double WaitS, double LearnerS, double EvalS, int Steps, double? ScoreS = null)
{
    /// <summary>The learner's own time per step, ms: what compares runs whatever their data waited on.</summary>
    public double? LearnerMsPerStep => Steps > 0 ? LearnerS * 1000 / Steps : null;
}

/// <summary>Where a run's figures come from: the service pipeline or the in-process learner loop.</summary>
internal enum RunSource
{
    Services,
    InProcess,
}

/// <summary>Everything measured for one learner run: the input of the report.</summary>
internal sealed record RunData
{
    /// <summary>uniform, easy-reference, hard-learner or learnability (the scoring rule, as in results.json).</summary>
    public required string Policy { get; init; }

    public required bool Independent { get; init; }

    public required double FilterRatio { get; init; }

    public required int Steps { get; init; }

    public required int BatchSize { get; init; }

    public required IReadOnlyList<EvalRow> Eval { get; init; }

    /// <summary>Wall time of every learner step, ms (what the trainer spent per batch, waiting included).</summary>
    public required IReadOnlyList<double> StepWallMs { get; init; }

    /// <summary>Share of swapped (noisy) pairs among the selected examples, one value per step in step order.</summary>
    public required IReadOnlyList<double> SwappedShare { get; init; }

    /// <summary>Time the selection service took to build S and sample, ms, one value per curated batch.</summary>
    public IReadOnlyList<double> SelectionMs { get; init; } = [];

    /// <summary>Share of the trainer's wall time spent waiting for its next batch (null when not measured).</summary>
    public double? StallShare { get; init; }

    /// <summary>Where the trainer's time went (null when not measured).</summary>
    public TrainerTime? Time { get; init; }

    public RunSource Source { get; init; } = RunSource.Services;

    /// <summary>Examples published for this run, and where each ended up.</summary>
    public long Produced { get; init; }

    public long Trained { get; init; }

    public long Filtered { get; init; }

    public long DeadLettered { get; init; }

    /// <summary>Super-batch size N = b / (1 − f).</summary>
    public int SuperBatchSize => SuperBatchSizing.SuperBatchSize(BatchSize, FilterRatio);

    /// <summary>The run's name in tables and legends: JEST is learnability with joint selection.</summary>
    public string Name => RunNames.Of(Policy, Independent, FilterRatio);
}

/// <summary>Display names of runs, shared by the report, the plots and the tests; the names come from <see cref="Policies"/>.</summary>
internal static class RunNames
{
    public const string Uniform = Policies.Uniform;
    public const string EasyReference = Policies.EasyReference;
    public const string HardLearner = Policies.HardLearner;
    public const string Learnability = Policies.Learnability;

    public static string Of(string policy, bool independent, double filterRatio)
    {
        var name = Policies.DisplayName(Policies.Parse(policy), independent);
        return policy == Uniform ? name : $"{name} f={filterRatio.ToString("0.0#", System.Globalization.CultureInfo.InvariantCulture)}";
    }

    /// <summary>Whether the policy needs a no-grad learner pass over the whole super-batch every step.</summary>
    public static bool ScoresWithLearner(string policy) => Policies.NeedsLearner(Policies.Parse(policy));
}
