namespace JestMesh.Curation.Tests;

[Trait("Tier", "Unit")]
public sealed class SoftmaxScoreTests
{
    [Theory]
    [InlineData(SelectionPolicy.Learnability, 90)]
    [InlineData(SelectionPolicy.HardLearner, 33)]
    [InlineData(SelectionPolicy.EasyReference, 300)] // parallel rows and several column blocks
    public void Conditional_scores_equal_direct_InfoNCE_with_the_selected_set_as_negatives(SelectionPolicy policy, int n)
    {
        const int dim = 12;
        const int chunk = 6;
        var random = new Random(3);
        var learner = Instances.Embeddings(random, n, dim, 9f, 0f, align: 0.4f);
        var reference = Instances.Embeddings(random, n, dim, 14f, 0f, align: 0.8f);
        var models = policy switch
        {
            SelectionPolicy.Learnability => new[] { (learner, 1.0), (reference, -1.0) },
            SelectionPolicy.HardLearner => new[] { (learner, 1.0) },
            _ => new[] { (reference, -1.0) },
        };
        var source = ScoreSources.SoftmaxContrastive(policy, learner, reference);
        Assert.False(source.IsPairwiseAdditive);
        var state = source.Start(chunk);
        var scores = new double[n];
        state.Initialize(scores);

        // First chunk: the whole super-batch as negatives (each example's ordinary InfoNCE loss).
        var all = Enumerable.Range(0, n).ToList();
        for (int c = 0; c < n; c++)
        {
            AssertClose(Loss(models, c, all, includeSelf: false), scores[c], $"Δ({c}|∅)");
        }

        var order = Enumerable.Range(0, n).OrderBy(_ => random.Next()).ToArray();
        var selected = new List<int>();
        for (int start = 0; start + chunk <= n && start < 5 * chunk; start += chunk)
        {
            state.Add(order.AsSpan(start, chunk), order.AsSpan(start + chunk), scores);
            selected.AddRange(order.AsSpan(start, chunk).ToArray());
            foreach (int c in order.AsSpan(start + chunk))
            {
                AssertClose(Loss(models, c, selected, includeSelf: true), scores[c], $"Δ({c}|𝒮, |𝒮|={selected.Count})");
            }
        }

        double want = selected.Sum(c => Loss(models, c, selected, includeSelf: false));
        AssertClose(want, state.SelectedScore, "s(𝒮)");
    }

    /// <summary>Σ_m sign_m·(i→t + t→i InfoNCE loss of c) with the given negatives; includeSelf adds the positive pair to the denominator.</summary>
    private static double Loss((ContrastiveEmbeddings E, double Sign)[] models, int c, List<int> negatives, bool includeSelf)
    {
        double total = 0;
        foreach (var (e, sign) in models)
        {
            double ucc = e.Alpha * Instances.Dot(e, c, c);
            double rowSum = includeSelf ? Math.Exp(ucc) : 0;
            double colSum = rowSum;
            foreach (int k in negatives)
            {
                rowSum += Math.Exp(e.Alpha * Instances.Dot(e, c, k));
                colSum += Math.Exp(e.Alpha * Instances.Dot(e, k, c));
            }

            total += sign * (Math.Log(rowSum) - ucc + Math.Log(colSum) - ucc);
        }

        return total;
    }

    private static void AssertClose(double want, double got, string what) =>
        Assert.True(Math.Abs(got - want) <= 1e-4 * Math.Max(1, Math.Abs(want)), $"{what} = {got}, want {want}");
}
