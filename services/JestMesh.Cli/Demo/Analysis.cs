using JestMesh.Curation;
using JestMesh.Models;

namespace JestMesh.Cli.Demo;

/// <summary>
/// "Steps to match uniform" exactly as the in-process experiment defines it (<see cref="InProcess.SpeedUp"/>, the
/// models issue): uniform's final accuracy is the mean of its last three evaluations; a run reaches it at the first
/// evaluation where the mean of three consecutive evaluations is at least that; speed-up = T / that step.
/// </summary>
internal static class MatchUniform
{
    public const int Window = InProcess.SpeedUp.Window;

    public static double Target(IReadOnlyList<EvalRow> uniform) => InProcess.SpeedUp.Target(Points(uniform));

    /// <summary>The step at which <paramref name="run"/> reaches <paramref name="target"/>, or null if it never does.</summary>
    public static int? Step(IReadOnlyList<EvalRow> run, double target) => InProcess.SpeedUp.ReachStep(Points(run), target);

    private static List<EvalPoint> Points(IReadOnlyList<EvalRow> evals)
    {
        ArgumentNullException.ThrowIfNull(evals);
        return evals.Select(e => new EvalPoint(e.Step, e.ZeroShotAcc, e.RAt1)).ToList();
    }
}

/// <summary>
/// Per-step compute relative to a uniform step, JEST.md §A.4: one learner forward costs F per example,
/// a training step 3F per example; the reference's embeddings are cached (computed once per example by
/// the Scoring service, not charged per step) and the scoring forward pass is not re-used for training.
/// So uniform and easy-reference cost 3F·b per step, learnability and hard-learner F·N + 3F·b.
/// </summary>
internal static class ComputeAccounting
{
    public const string Convention =
        "JEST.md §A.4: learner forward = F per example, training step = 3F per example; reference embeddings cached " +
        "(not charged per step), no forward re-use; 1 unit = one uniform step (3F·b)";

    public const string ShortConvention = "§A.4, cached reference, no forward re-use; 1 = 3F·b";

    public static double PerStepRelative(string policy, int batchSize, double filterRatio)
    {
        if (!RunNames.ScoresWithLearner(policy))
        {
            return 1.0;
        }

        double n = SuperBatchSizing.SuperBatchSize(batchSize, filterRatio);
        return (n + (3.0 * batchSize)) / (3.0 * batchSize);
    }
}

/// <summary>Order statistics used by the report.</summary>
internal static class Stats
{
    /// <summary>The q-quantile by linear interpolation between order statistics (q in [0, 1]).</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            throw new ArgumentException("no values.", nameof(values));
        }

        var sorted = values.Order().ToArray();
        var position = q * (sorted.Length - 1);
        var lower = (int)Math.Floor(position);
        var upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + ((position - lower) * (sorted[upper] - sorted[lower]));
    }

    public static LatencySummary? Summarize(IReadOnlyList<double> values) =>
        values.Count == 0 ? null : new LatencySummary(values.Count, values.Average(), Quantile(values, 0.5), Quantile(values, 0.95), values.Max());
}

/// <summary>Builds results.json's object from the measured runs: one place computes every reported figure.</summary>
internal static class ResultsBuilder
{
    public static DemoResults Build(IReadOnlyList<RunData> runs, IReadOnlyList<StageTiming> spans, string stageSource)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var uniform = runs.FirstOrDefault(r => r.Policy == RunNames.Uniform)
            ?? throw new ArgumentException("the runs include no uniform run: steps_to_match_uniform needs it.", nameof(runs));
        foreach (var r in runs)
        {
            if (r.Steps != uniform.Steps || r.BatchSize != uniform.BatchSize)
            {
                throw new ArgumentException($"run {r.Name} has T={r.Steps}, b={r.BatchSize}; uniform has T={uniform.Steps}, b={uniform.BatchSize}: not comparable.", nameof(runs));
            }

            if (r.Eval.Count == 0)
            {
                throw new ArgumentException($"run {r.Name} has no evaluations.", nameof(runs));
            }
        }

        var target = MatchUniform.Target(uniform.Eval);
        var results = runs.Select(r => new RunResult(
            r.Policy, r.FilterRatio, r.Independent, r.Steps, r.BatchSize,
            r.Eval.Select(e => new EvalJson(e.Step, e.ZeroShotAcc, e.RAt1)).ToList(),
            r.Eval[^1].ZeroShotAcc,
            MatchUniform.Step(r.Eval, target),
            ComputeAccounting.PerStepRelative(r.Policy, r.BatchSize, r.FilterRatio),
            r.StepWallMs.Count == 0 ? null : r.StepWallMs.Average(),
            r.SwappedShare.Count == 0 ? null : r.SwappedShare.Average())).ToList();
        var accounting = new Accounting(runs.Sum(r => r.Produced), runs.Sum(r => r.Trained), runs.Sum(r => r.Filtered), runs.Sum(r => r.DeadLettered));
        var selection = runs.SelectMany(r => r.SelectionMs).ToList();
        var stalls = runs.Where(r => r.StallShare is not null || r.Time is not null).Select(r => new RunStall(r.Name, r.StallShare ?? (r.Time is { WallS: > 0 } t ? t.WaitS / t.WallS : 0))
        {
            WallS = r.Time?.WallS,
            WaitS = r.Time?.WaitS,
            LearnerS = r.Time?.LearnerS,
            EvalS = r.Time?.EvalS,
            LearnerMsPerStep = r.Time?.LearnerMsPerStep,
        }).ToList();
        return new DemoResults(results, accounting, new StageReport(stageSource, spans, Stats.Summarize(selection), stalls));
    }

    /// <summary>Mean of one per-step series over consecutive windows ending at each evaluation step (for the swapped-share plot).</summary>
    public static IReadOnlyList<(int Step, double Value)> Windows(IReadOnlyList<double> perStep, IReadOnlyList<EvalRow> evals)
    {
        ArgumentNullException.ThrowIfNull(perStep);
        ArgumentNullException.ThrowIfNull(evals);
        var points = new List<(int, double)>();
        var start = 0;
        foreach (var e in evals)
        {
            var end = Math.Min(e.Step, perStep.Count);
            if (end > start)
            {
                double sum = 0;
                for (var i = start; i < end; i++)
                {
                    sum += perStep[i];
                }

                points.Add((end, sum / (end - start)));
                start = end;
            }
        }

        return points;
    }
}
