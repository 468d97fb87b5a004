using JestMesh.Models;

namespace JestMesh.Cli.InProcess;

/// <summary>
/// Speed-up at equal steps, defined so that flat, noisy curves cannot fake it: the target is the mean of the
/// baseline's last three evaluations; a run reaches it at the first evaluation whose trailing mean over three
/// consecutive evaluations (that one and the two before) is at least the target; speed-up = T / that step.
/// </summary>
internal static class SpeedUp
{
    public const int Window = 3;

    public static double Target(IReadOnlyList<EvalPoint> baseline)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        if (baseline.Count < Window)
        {
            throw new ArgumentException($"the baseline has {baseline.Count} evaluations; the speed-up needs at least {Window}.", nameof(baseline));
        }

        return baseline.Skip(baseline.Count - Window).Average(e => e.ZeroShotAcc);
    }

    /// <summary>The step at which <paramref name="run"/> reaches <paramref name="target"/>, or null if it never does.</summary>
    public static int? ReachStep(IReadOnlyList<EvalPoint> run, double target)
    {
        ArgumentNullException.ThrowIfNull(run);
        for (var k = Window - 1; k < run.Count; k++)
        {
            double sum = 0;
            for (var j = k - Window + 1; j <= k; j++)
            {
                sum += run[j].ZeroShotAcc;
            }

            // A tiny tolerance so the baseline reaches its own target despite floating-point summation order.
            if (sum / Window >= target - 1e-12)
            {
                return run[k].Step;
            }
        }

        return null;
    }

    public static double? Factor(int totalSteps, int? reachStep) => reachStep is { } s ? (double)totalSteps / s : null;
}
