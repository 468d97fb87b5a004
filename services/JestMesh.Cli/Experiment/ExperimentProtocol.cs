using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Models;

namespace JestMesh.Cli.Experiment;

/// <summary>
/// The arithmetic of issue 15's protocol, fixed before any result: final accuracy = mean of the last 3
/// evaluations; steps to match = first evaluation step at which the trailing mean of 3 consecutive
/// evaluations reaches the same-seed uniform run's final; speed-up = T / that step; compute speed-up =
/// speed-up / (compute per step relative to a uniform step, §A.4 with learner scoring at its real cost);
/// wall-clock speed-up = uniform's wall time to its last step / the run's wall time to its match step.
/// </summary>
internal static class ExperimentProtocol
{
    public const int Window = InProcess.SpeedUp.Window;

    /// <summary>Two-sided 95 % Student t quantiles for 1…10 degrees of freedom.</summary>
    private static readonly double[] T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

    /// <summary>Mean zero-shot accuracy of the last <see cref="Window"/> evaluations.</summary>
    public static double Final(IReadOnlyList<EvalPoint> evals) => InProcess.SpeedUp.Target(evals);

    /// <summary>First evaluation step whose trailing 3-evaluation mean reaches <paramref name="target"/>; null if none does.</summary>
    public static int? StepsToMatch(IReadOnlyList<EvalPoint> evals, double target) => InProcess.SpeedUp.ReachStep(evals, target);

    public static double? SpeedUp(int totalSteps, int? stepsToMatch) => InProcess.SpeedUp.Factor(totalSteps, stepsToMatch);

    /// <summary>Steps-speed-up divided by the run's compute per step relative to a uniform step.</summary>
    public static double? ComputeSpeedUp(double? speedUp, double computePerStepRel) => speedUp / computePerStepRel;

    /// <summary>Uniform's wall time over all its steps / the run's wall time up to its match step (per-step wall times, evaluation excluded).</summary>
    public static double? WallSpeedUp(IReadOnlyList<double> uniformStepWallMs, IReadOnlyList<double> runStepWallMs, int? stepsToMatch, int steps)
    {
        ArgumentNullException.ThrowIfNull(uniformStepWallMs);
        ArgumentNullException.ThrowIfNull(runStepWallMs);
        // A list shorter than T lacks its first steps (the Trainer records none for its first step): step s is at s − 1 − missing.
        var missing = steps - runStepWallMs.Count;
        if (stepsToMatch is not { } k || missing < 0 || k - missing <= 0 || uniformStepWallMs.Count == 0)
        {
            return null;
        }

        double run = 0;
        for (var i = 0; i < k - missing; i++)
        {
            run += runStepWallMs[i];
        }

        return uniformStepWallMs.Sum() / run;
    }

    /// <summary>
    /// Compute of one step relative to a uniform step (JEST.md §A.4: a training step costs 3F per example, a
    /// learner forward F; the reference's embeddings are cached, so not charged): 1 for policies without the
    /// learner, else 1 + N·F(R) / (3·b·F(28)) with F(R) the forward cost at the scoring resolution, counted in
    /// multiply-accumulates by <see cref="ModelCost"/>.
    /// </summary>
    public static double ComputePerStepRel(SelectionPolicy policy, int batchSize, double filterRatio, int scoreResolution, ModelConfig config)
    {
        if (!Policies.NeedsLearner(policy))
        {
            return 1.0;
        }

        double n = SuperBatchSizing.SuperBatchSize(batchSize, filterRatio);
        return 1.0 + (n * ModelCost.RelativeForward(config, scoreResolution) / (3.0 * batchSize));
    }

    public static double Mean(IReadOnlyList<double> values) => values.Average();

    /// <summary>Half-width of the 95 % t-interval of the mean; null for fewer than 2 values.</summary>
    public static double? HalfWidth95(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count < 2)
        {
            return null;
        }

        var mean = values.Average();
        var sd = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        var t = values.Count - 1 <= T95.Length ? T95[values.Count - 2] : 1.96;
        return t * sd / Math.Sqrt(values.Count);
    }

    /// <summary>Default side of the images (the exact scoring resolution).</summary>
    public const int FullResolution = ImageSet.Side;
}
