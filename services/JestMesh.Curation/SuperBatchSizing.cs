namespace JestMesh.Curation;

/// <summary>
/// The one rule relating the super-batch N, the batch b and the filter ratio f = 1 − b/N: both
/// directions round half away from zero, so N(b) and b(N) agree for every setting used here
/// (b = 128: f = 0.5 → N = 256, f = 0.8 → 640, f = 0.9 → 1,280, and back).
/// </summary>
public static class SuperBatchSizing
{
    /// <summary>N = round(b / (1 − f)): the candidates scored for a batch of <paramref name="batchSize"/>.</summary>
    public static int SuperBatchSize(int batchSize, double filterRatio)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        CheckRatio(filterRatio);
        var n = Math.Round(batchSize / (1 - filterRatio), MidpointRounding.AwayFromZero);
        if (n > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(filterRatio), filterRatio, $"batch {batchSize} at filter ratio {filterRatio} needs more than {int.MaxValue} candidates.");
        }
        return (int)n;
    }

    /// <summary>b = round((1 − f)·N), at least 1 and at most N: the examples selected from <paramref name="superBatchSize"/> candidates.</summary>
    public static int BatchSize(int superBatchSize, double filterRatio)
    {
        CheckRatio(filterRatio);
        return Math.Clamp((int)Math.Round((1 - filterRatio) * superBatchSize, MidpointRounding.AwayFromZero), 1, Math.Max(1, superBatchSize));
    }

    /// <summary>True for a filter ratio in [0, 1).</summary>
    public static bool IsValidRatio(double filterRatio) => filterRatio >= 0 && filterRatio < 1;

    private static void CheckRatio(double filterRatio)
    {
        if (!IsValidRatio(filterRatio))
        {
            throw new ArgumentOutOfRangeException(nameof(filterRatio), filterRatio, "the filter ratio must be in [0, 1).");
        }
    }
}
