namespace JestMesh.Data;

/// <summary>
/// The order in which the pool is streamed as super-batches, shared by the Ingest service and the
/// in-process loop so that both see the same super-batches in the same order for the same seed.
/// Every epoch is a fresh permutation of the pool drawn from (order seed, epoch) and cut into full
/// super-batches; the remainder of an epoch (fewer than N examples) is not used in that epoch.
/// </summary>
public static class SuperBatchPlan
{
    /// <summary>
    /// Pool positions of consecutive super-batches of <paramref name="superBatchSize"/>, over
    /// <paramref name="epochs"/> passes (unbounded by default: callers take what they need).
    /// </summary>
    public static IEnumerable<int[]> Positions(int poolSize, int superBatchSize, int orderSeed, int epochs = int.MaxValue)
    {
        if (superBatchSize < 1 || superBatchSize > poolSize)
        {
            throw new ArgumentException($"a super-batch of {superBatchSize} does not fit a pool of {poolSize} examples.", nameof(superBatchSize));
        }
        return Enumerate(poolSize, superBatchSize, orderSeed, epochs);
    }

    private static IEnumerable<int[]> Enumerate(int poolSize, int superBatchSize, int orderSeed, int epochs)
    {
        var order = new int[poolSize];
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            for (var i = 0; i < poolSize; i++)
            {
                order[i] = i;
            }
            new Random(EpochSeed(orderSeed, epoch)).Shuffle(order);
            for (var start = 0; start + superBatchSize <= poolSize; start += superBatchSize)
            {
                yield return order[start..(start + superBatchSize)];
            }
        }
    }

    /// <summary>
    /// Seed of one epoch's permutation: SplitMix64 of (seed, epoch), stable across processes and
    /// runtimes (unlike <see cref="HashCode"/>, which is randomised per process).
    /// </summary>
    public static int EpochSeed(int orderSeed, int epoch)
    {
        unchecked
        {
            var z = ((ulong)(uint)orderSeed << 32 | (uint)epoch) + 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (int)(z >> 33);
        }
    }
}
