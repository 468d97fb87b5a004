namespace JestMesh.Data.Tests;

/// <summary>The web-like pool's recipe (README "The web-like pool"): long tail, swapped share, duplicates of the easiest, determinism.</summary>
[Trait("Tier", "Unit")]
public sealed class WeblikePoolTests(RealImages images) : IClassFixture<RealImages>
{
    private static readonly DataOptions Options = new() { Seed = 0, Pool = PoolKinds.Weblike, SwappedShare = WeblikeRecipe.SwappedShare };

    // A stand-in for the reference: pairs of class 3 are "easiest", then lower ids; what the pool does with any ranking.
    private static double[] FakeLoss(IReadOnlyList<PairExample> pairs, ImageSet _) =>
        pairs.Select(p => (p.Label == 3 ? 0.0 : 1.0) + (p.Id * 1e-9)).ToArray();

    private PairDataset Build(DataOptions options, ReferencePairLoss? loss = null) => PairDataset.Build(options, images.Train, images.Test, loss ?? FakeLoss);

    [Fact]
    public void Classes_are_long_tailed_with_a_tenfold_ratio()
    {
        var data = Build(Options);
        var original = data.Pool.Where(p => p.Kind != PairKind.Duplicate).ToArray();
        var counts = original.GroupBy(p => p.Label).Select(g => g.Count()).Order().ToArray();
        Assert.Equal(10, counts.Length);
        Assert.Equal(570, counts[0]);
        Assert.Equal(5700, counts[^1]);
        Assert.Equal(10.0, counts[^1] / (double)counts[0], 1);
        Assert.Equal(23_295, original.Length);
    }

    [Fact]
    public void Swapped_share_and_duplicate_share_follow_the_recipe()
    {
        var data = Build(Options);
        var original = data.Pool.Count(p => p.Kind != PairKind.Duplicate);
        Assert.Equal(Math.Round(0.3 * original), data.Pool.Count(p => p.Kind == PairKind.Swapped));
        var duplicates = data.Pool.Where(p => p.Kind == PairKind.Duplicate).ToArray();
        Assert.Equal(Math.Round(WeblikeRecipe.DuplicateShare * original), duplicates.Length);
        Assert.False(data.DuplicatesOmitted);
    }

    [Fact]
    public void Duplicates_copy_only_the_easiest_pairs_lightly_perturbed()
    {
        var data = Build(Options);
        // By the fake loss the 64 easiest clean pairs are of class 3: every duplicate is one of them.
        var duplicates = data.Pool.Where(p => p.Kind == PairKind.Duplicate).ToArray();
        Assert.All(duplicates, d => Assert.Equal(3, d.Label));
        var sources = data.Pool.Where(p => p.Kind == PairKind.Clean && p.Label == 3).OrderBy(p => p.Id).Take(WeblikeRecipe.DuplicateSources).ToArray();
        foreach (var d in duplicates.Take(50))
        {
            var image = data.Train.Image(d.ImageIndex).ToArray();
            var nearest = sources.Min(s => ShiftedDistance(image, data.Train.Image(s.ImageIndex).ToArray()));
            Assert.True(nearest <= 8.0, $"duplicate {d.Id} is {nearest:F1} grey levels per pixel from every source");
        }
    }

    [Fact]
    public void Same_options_give_the_same_pool_and_the_fingerprint_names_the_pool()
    {
        var a = Build(Options);
        var b = Build(Options);
        Assert.Equal(a.Fingerprint, b.Fingerprint);
        Assert.True(Same(a.Pool, b.Pool));
        Assert.Equal(a.Train.Pixels, b.Train.Pixels);
        var plain = PairDataset.Build(new DataOptions { Seed = 0, SwappedShare = WeblikeRecipe.SwappedShare }, images.Train, images.Test);
        Assert.NotEqual(plain.Fingerprint, a.Fingerprint);
        // The curated set is drawn exactly as for the default pool.
        Assert.True(Same(plain.Curated, a.Curated));
    }

    [Fact]
    public void Without_the_reference_the_pool_has_no_duplicates_and_says_so()
    {
        var data = PairDataset.Build(Options, images.Train, images.Test);
        Assert.True(data.DuplicatesOmitted);
        Assert.DoesNotContain(data.Pool, p => p.Kind == PairKind.Duplicate);
        // The reference is trained from this build, the runs use the full one: both must carry one fingerprint.
        Assert.Equal(data.Fingerprint, Build(Options).Fingerprint);
    }

    private static bool Same(IReadOnlyList<PairExample> a, IReadOnlyList<PairExample> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Id == p.Second.Id && p.First.ImageIndex == p.Second.ImageIndex
            && p.First.Label == p.Second.Label && p.First.Kind == p.Second.Kind && p.First.Tokens.SequenceEqual(p.Second.Tokens));

    // Mean absolute difference at the best of the nine one-pixel shifts (borders excluded).
    private static double ShiftedDistance(byte[] a, byte[] b)
    {
        var best = double.MaxValue;
        for (var dy = -1; dy <= 1; dy++)
        {
            for (var dx = -1; dx <= 1; dx++)
            {
                double sum = 0;
                var n = 0;
                for (var y = 1; y < 27; y++)
                {
                    for (var x = 1; x < 27; x++)
                    {
                        sum += Math.Abs(a[(y * 28) + x] - b[((y - dy) * 28) + x - dx]);
                        n++;
                    }
                }

                best = Math.Min(best, sum / n);
            }
        }

        return best;
    }
}
