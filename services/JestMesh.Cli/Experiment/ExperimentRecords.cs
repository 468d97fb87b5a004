using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Models;

namespace JestMesh.Cli.Experiment;

/// <summary>One run of the protocol: which policy, how selected, at which filter ratio, scoring resolution and seed.</summary>
internal sealed record RunSpec(SelectionPolicy Policy, bool Independent, double FilterRatio, int ScoreResolution, int Seed)
{
    public string PolicyName => Policies.Name(Policy);

    /// <summary>The run's name as `train` and the demo name it (jest, learnability-independent, uniform, ...), plus the cheap-scoring resolution.</summary>
    public string Name => Policies.RunName(Policy, Independent) + (ScoreResolution != ExperimentProtocol.FullResolution ? $"@{ScoreResolution}px" : "");

    /// <summary>The group the summary averages over seeds.</summary>
    public string Group => Policy == SelectionPolicy.Uniform ? Name : $"{Name} f={F(FilterRatio)}";

    /// <summary>Directory name under DIR/runs.</summary>
    public string Slug => $"{Policies.RunName(Policy, Independent)}-f{F(FilterRatio)}{(ScoreResolution != ExperimentProtocol.FullResolution ? $"-r{ScoreResolution}" : "")}-s{Seed}";

    internal static string F(double value) => value.ToString("0.0##", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The protocol's fixed settings, written into results.json and into every run.json (a run of another protocol is never mixed in).</summary>
internal sealed record ProtocolInfo
{
    public required int Steps { get; init; }

    public required int BatchSize { get; init; }

    public required int EvalEvery { get; init; }

    public required int EvalExamples { get; init; }

    public required int Chunks { get; init; }

    public required double Gain { get; init; }

    public required string Pool { get; init; }

    public required string DataFingerprint { get; init; }

    public required string ReferenceSha256 { get; init; }

    /// <summary>Where the runs ran: <see cref="InProcess"/> (the loop of <c>train --inproc</c>) or <see cref="Services"/> (local service processes).</summary>
    public string Path { get; init; } = InProcess;

    public const string InProcess = "in-process";

    public const string Services = "services";

    public int FinalWindow { get; init; } = ExperimentProtocol.Window;

    public int MatchWindow { get; init; } = ExperimentProtocol.Window;

    public string Final { get; init; } = "mean zero-shot accuracy of the last 3 evaluations";

    public string StepsToMatch { get; init; } = "first evaluation step whose trailing mean of 3 consecutive evaluations reaches the same-seed uniform run's final";

    public string ComputeConvention { get; init; } =
        "JEST.md §A.4: training step 3F per example, learner forward F(R) per candidate at scoring resolution R (multiply-accumulates counted per layer), " +
        "reference embeddings cached (not charged); compute_per_step_rel = 1 + N·F(R)/(3·b·F(28)); compute_speed_up = speed_up / compute_per_step_rel";

    public string WallConvention { get; init; } = InProcessWall;

    public const string InProcessWall =
        "sum of per-step wall times (data gather, learner scoring, selection, optimiser step; evaluation, first reference pass over an example and cheap-vs-exact checks excluded): " +
        "uniform's over all T steps / the run's up to its match step";

    public const string ServicesWall =
        "sum of the Trainer's per-step wall times (run-summary.json step_wall_ms: from the end of one step to the end of the next, waiting on the Curate stream, learner scoring " +
        "and training; evaluation and checkpoint excluded; the first step, which has no previous end, is not recorded): uniform's over its steps 2..T / the run's over steps 2..match";

    /// <summary>Everything that must be equal for two runs to be compared (the in-process path adds nothing, so its earlier runs keep their key).</summary>
    public string Key => $"T={Steps}|b={BatchSize}|eval={EvalEvery}x{EvalExamples}|chunks={Chunks}|gain={Gain:R}|pool={Pool}|data={DataFingerprint}|ref={ReferenceSha256}"
        + (Path == Services ? "|path=services" : "");
}

/// <summary>DIR/runs/SLUG/run.json: written once a run has finished; its presence is what makes the run done.</summary>
internal sealed record RunRecord
{
    public required string ProtocolKey { get; init; }

    public required string Policy { get; init; }

    public required bool Independent { get; init; }

    public required double FilterRatio { get; init; }

    public required int ScoreResolution { get; init; }

    public required int Seed { get; init; }

    public required List<EvalPoint> Eval { get; init; }

    public required List<double> StepWallMs { get; init; }

    public required List<double> LearnerScoringMs { get; init; }

    public required List<double> TrainMs { get; init; }

    public required List<double> EvalMs { get; init; }

    public required List<RankCheck> RankChecks { get; init; }

    public required double MeanSwappedShare { get; init; }

    public required double WallSeconds { get; init; }

    public required int Threads { get; init; }

    /// <summary>1-minute load average of the machine when the run started and when it ended.</summary>
    public required double LoadStart { get; init; }

    public required double LoadEnd { get; init; }

    public required DateTimeOffset FinishedUtc { get; init; }

    /// <summary>A run through the services: the Trainer's time totals and the run's accounting (null in-process, whose per-step lists hold the times).</summary>
    public ServicesRun? Services { get; init; }

    /// <summary>The learner's mean scoring time per step, ms (null for runs that do not score with the learner).</summary>
    public double? LearnerScoringMsMean() => !Policies.NeedsLearner(Policies.Parse(Policy)) ? null
        : LearnerScoringMs.Count > 0 ? LearnerScoringMs.Average()
        : Services is { Steps: > 0 } s ? s.ScoreSeconds * 1000 / s.Steps : null;

    /// <summary>The mean optimiser-step time, ms.</summary>
    public double TrainMsMean() => TrainMs.Count > 0 ? TrainMs.Average() : Services is { Steps: > 0 } s ? s.TrainSeconds * 1000 / s.Steps : double.NaN;

    public RunSpec Spec() => new(Policies.Parse(Policy), Independent, FilterRatio, ScoreResolution, Seed);

    /// <summary>An in-process run's record; <see cref="ExperimentRunner"/> stamps the protocol key, the loads and the finish time.</summary>
    public static RunRecord From(RunSpec spec, LearnerMetrics m) => new()
    {
        ProtocolKey = "",
        Policy = spec.PolicyName,
        Independent = spec.Independent,
        FilterRatio = spec.FilterRatio,
        ScoreResolution = spec.ScoreResolution,
        Seed = spec.Seed,
        Eval = [.. m.Eval],
        StepWallMs = [.. m.StepWallMs],
        LearnerScoringMs = [.. m.LearnerScoringMs],
        TrainMs = [.. m.TrainMs],
        EvalMs = [.. m.EvalMs],
        RankChecks = [.. m.RankChecks],
        MeanSwappedShare = m.MeanSwappedShare,
        WallSeconds = m.WallSeconds,
        Threads = m.Threads,
        LoadStart = double.NaN,
        LoadEnd = double.NaN,
        FinishedUtc = default,
    };
}

/// <summary>What a run through the services leaves besides its evaluations and step times: the Trainer's run-summary totals and where every produced example ended up.</summary>
internal sealed record ServicesRun(
    double WallSeconds, double WaitSeconds, double ScoreSeconds, double TrainSeconds, double EvalSeconds, int Steps,
    long Produced, long Trained, long Filtered, long DeadLettered, string Job);

/// <summary>What the learner's scoring costs in a run: the accounting's figure and the measured times.</summary>
internal sealed record ScoringCost(
    int Resolution,
    double ComputePerStepRel,
    double ForwardRelToFull,
    double? LearnerScoringMsMean,
    double TrainMsMean,
    double StepWallMsMean,
    double? MeasuredScoringRelToTrainStep)
{
    /// <summary>The run's mean step wall time over its own mean optimiser-step time: its time per step in uniform steps, measured within the run (load-robust).</summary>
    public double MeasuredStepRelToTrain => StepWallMsMean / TrainMsMean;
}

/// <summary>Mean rank agreement of cheap vs exact learner scores over a run's checks.</summary>
internal sealed record RankSummary(int Checks, double SpearmanLearnabilityMean, double SpearmanLearnerLossMean, double TopBOverlapMean);

/// <summary>One run in results.json.</summary>
internal sealed record RunResult
{
    public required string Name { get; init; }

    public required string Policy { get; init; }

    public required bool Independent { get; init; }

    public required double FilterRatio { get; init; }

    public required int Seed { get; init; }

    public required List<EvalPoint> Eval { get; init; }

    public required double Final { get; init; }

    public double? FinalMinusUniform { get; init; }

    public int? StepsToMatch { get; init; }

    public double? SpeedUp { get; init; }

    public double? ComputeSpeedUp { get; init; }

    public double? WallSpeedUp { get; init; }

    /// <summary>
    /// Added after the runs met very different machine loads (not part of the pre-registered protocol): speed-up /
    /// the run's step time in units of its own optimiser step, both measured in the same run.
    /// </summary>
    public double? TimeSpeedUp { get; init; }

    public required ScoringCost Scoring { get; init; }

    public RankSummary? CheapVsExact { get; init; }

    public required double MeanSwappedShare { get; init; }

    public required double LoadStart { get; init; }

    public required double LoadEnd { get; init; }

    public required double WallSeconds { get; init; }

    /// <summary>Through the services: the Trainer's time totals and where every produced example ended up.</summary>
    public ServicesRun? Services { get; init; }
}

/// <summary>One seed's figures in a summary row.</summary>
internal sealed record SeedFigures(double Final, double? FinalMinusUniform, int? StepsToMatch, double? SpeedUp, double? ComputeSpeedUp, double? WallSpeedUp, double? TimeSpeedUp);

/// <summary>A policy's figures over seeds: means (null when a seed has no value, e.g. never matched), 95 % t-intervals, and every seed.</summary>
internal sealed record SummaryRow
{
    public required string Name { get; init; }

    public required string Policy { get; init; }

    public required bool Independent { get; init; }

    public required double FilterRatio { get; init; }

    public required int ScoreResolution { get; init; }

    public required int Seeds { get; init; }

    public required double FinalMean { get; init; }

    public double? FinalCi95 { get; init; }

    public double? FinalMinusUniformMean { get; init; }

    public double? FinalMinusUniformCi95 { get; init; }

    public double? SpeedUpMean { get; init; }

    public double? ComputeSpeedUpMean { get; init; }

    public double? WallSpeedUpMean { get; init; }

    public double? TimeSpeedUpMean { get; init; }

    public required double ComputePerStepRel { get; init; }

    public double? SpearmanLearnabilityMean { get; init; }

    public required SortedDictionary<string, SeedFigures> PerSeed { get; init; }
}

/// <summary>DIR/results.json.</summary>
internal sealed record ExperimentResults(ProtocolInfo Protocol, List<RunResult> Runs, List<SummaryRow> Summary);
