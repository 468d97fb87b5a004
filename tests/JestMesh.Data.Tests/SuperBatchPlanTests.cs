namespace JestMesh.Data.Tests;

[Trait("Tier", "Unit")]
public sealed class SuperBatchPlanTests
{
    [Fact]
    public void Every_epoch_is_a_fresh_permutation_cut_into_full_super_batches()
    {
        var plan = SuperBatchPlan.Positions(1000, 300, orderSeed: 5, epochs: 3).ToList();

        Assert.Equal(9, plan.Count);
        for (var epoch = 0; epoch < 3; epoch++)
        {
            var positions = plan.Skip(epoch * 3).Take(3).SelectMany(p => p).ToList();
            Assert.Equal(900, positions.Distinct().Count());
            Assert.All(positions, p => Assert.InRange(p, 0, 999));
        }
        Assert.NotEqual(plan[0], plan[3]);
        Assert.NotEqual(Enumerable.Range(0, 300), plan[0]);
    }

    [Fact]
    public void The_order_depends_only_on_the_seed()
    {
        Assert.Equal(SuperBatchPlan.Positions(500, 100, 1).Take(12), SuperBatchPlan.Positions(500, 100, 1).Take(12));
        Assert.NotEqual(SuperBatchPlan.Positions(500, 100, 1).First(), SuperBatchPlan.Positions(500, 100, 2).First());
        // Pinned values: the epoch seeds must not change between processes, runtimes or releases,
        // or Ingest and `train --inproc` (and runs before and after an upgrade) stream different data.
        Assert.Equal(PinnedEpochSeeds, new[] { SuperBatchPlan.EpochSeed(0, 0), SuperBatchPlan.EpochSeed(0, 1), SuperBatchPlan.EpochSeed(7, 3) });
    }

    [Fact]
    public void A_super_batch_larger_than_the_pool_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => SuperBatchPlan.Positions(10, 11, 0));
        Assert.Contains("pool of 10", e.Message, StringComparison.Ordinal);
    }

    private static readonly int[] PinnedEpochSeeds = [1896895516, 1216681718, 2123962916];
}
