namespace JestMesh.Data.WebDataset;

/// <summary>
/// The seeded order a sharded source is streamed in, the shard counterpart of <see cref="SuperBatchPlan"/>:
/// each epoch visits the shards in a permutation drawn from (order seed, epoch) and each shard's
/// samples in a permutation drawn from (that epoch's seed, the shard's place in name order). Only one
/// shard is held at a time, so memory does not grow with the pool. Super-batches are cut from the
/// epoch's stream across shard boundaries; an epoch's remainder of fewer than N is not used (as in
/// <see cref="SuperBatchPlan"/>).
/// </summary>
public static class ShardOrder
{
    /// <summary>Visiting order of <paramref name="shardCount"/> shards (indices in name order) in <paramref name="epoch"/>.</summary>
    public static int[] Shards(int shardCount, int orderSeed, int epoch) =>
        Permutation(shardCount, SuperBatchPlan.EpochSeed(orderSeed, epoch));

    /// <summary>Order of the <paramref name="count"/> samples (file order indices) of shard <paramref name="shardIndex"/> in <paramref name="epoch"/>.</summary>
    public static int[] Within(int count, int orderSeed, int epoch, int shardIndex) =>
        Permutation(count, SuperBatchPlan.EpochSeed(SuperBatchPlan.EpochSeed(orderSeed, epoch), shardIndex));

    private static int[] Permutation(int count, int seed)
    {
        var order = new int[count];
        for (var i = 0; i < count; i++)
        {
            order[i] = i;
        }
        new Random(seed).Shuffle(order);
        return order;
    }

    /// <summary>
    /// Pool positions of consecutive super-batches when a pool of <paramref name="poolSize"/> examples is
    /// streamed as shards of <paramref name="shardSize"/> in pool order (what `jestmesh data wds --shard-size`
    /// writes): the order <see cref="WdsSource.SuperBatches"/> streams those shards in, without the files.
    /// </summary>
    public static IEnumerable<int[]> PoolPositions(int poolSize, int shardSize, int superBatchSize, int orderSeed, int epochs = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        if (superBatchSize < 1 || superBatchSize > poolSize)
        {
            throw new ArgumentException($"a super-batch of {superBatchSize} does not fit a pool of {poolSize} examples.", nameof(superBatchSize));
        }
        return Enumerate(poolSize, shardSize, superBatchSize, orderSeed, epochs);
    }

    private static IEnumerable<int[]> Enumerate(int poolSize, int shardSize, int superBatchSize, int orderSeed, int epochs)
    {
        var shardCount = (poolSize + shardSize - 1) / shardSize;
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            var batch = new List<int>(superBatchSize);
            foreach (var shard in Shards(shardCount, orderSeed, epoch))
            {
                var start = shard * shardSize;
                foreach (var i in Within(Math.Min(shardSize, poolSize - start), orderSeed, epoch, shard))
                {
                    batch.Add(start + i);
                    if (batch.Count == superBatchSize)
                    {
                        yield return [.. batch];
                        batch.Clear();
                    }
                }
            }
        }
    }
}
