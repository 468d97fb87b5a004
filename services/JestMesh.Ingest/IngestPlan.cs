using JestMesh.Data;

namespace JestMesh.Ingest;

/// <summary>Which slices of the pool Ingest publishes, in a reproducible order (the conversion to messages is <see cref="Protos.V1.SuperBatchBuilder"/>).</summary>
public static class IngestPlan
{
    /// <summary>
    /// Pool positions of every super-batch to publish, in order: <see cref="SuperBatchPlan"/> with
    /// Ingest:OrderSeed (the in-process loop streams the same order for the same seed), over
    /// Ingest:Epochs, stopping after Ingest:MaxSuperBatches when that is set.
    /// </summary>
    public static IEnumerable<int[]> Positions(int poolSize, IngestOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var n = options.SuperBatchSize;
        if (poolSize < n)
        {
            throw new ArgumentException($"Ingest:SuperBatchSize {n} is larger than the pool ({poolSize} examples).", nameof(options));
        }
        var plan = SuperBatchPlan.Positions(poolSize, n, options.OrderSeed, options.Epochs);
        return options.MaxSuperBatches > 0 ? plan.Take(options.MaxSuperBatches) : plan;
    }
}
