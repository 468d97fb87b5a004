namespace JestMesh.Curation.Tests;

[Trait("Tier", "Unit")]
public sealed class SigmoidScoreTests
{
    [Theory]
    [InlineData(SelectionPolicy.Learnability, 37, 19, 10f, -10f)]
    [InlineData(SelectionPolicy.Learnability, 45, 64, 30f, -12f)]
    [InlineData(SelectionPolicy.HardLearner, 23, 8, 5f, 1f)]
    [InlineData(SelectionPolicy.EasyReference, 29, 33, 2f, -3f)]
    public void Sigmoid_matrix_equals_direct_double_precision_per_pair_losses(SelectionPolicy policy, int n, int dim, float alpha, float beta)
    {
        var random = new Random(11);
        var learner = Instances.Embeddings(random, n, dim, alpha, beta);
        var reference = Instances.Embeddings(random, n, dim, alpha * 1.3f, beta + 0.5f, align: 0.8f);
        var source = (SigmoidContrastiveSource)ScoreSources.SigmoidContrastive(policy, learner, reference);
        var want = Instances.SigmoidMatrix(policy, learner, reference, n);
        var rows = Enumerable.Range(0, n).ToArray();
        var got = new float[n * n];
        source.CopyBlock(rows, rows, got);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double w = want[i, j];
                Assert.True(Math.Abs(got[(i * n) + j] - w) <= 2e-5 * Math.Max(1, Math.Abs(w)), $"S[{i},{j}] = {got[(i * n) + j]}, want {w}");
            }
        }
    }

    [Theory]
    [InlineData(SelectionPolicy.Learnability, 50, 16, 5)]
    [InlineData(SelectionPolicy.HardLearner, 41, 7, 3)]
    [InlineData(SelectionPolicy.EasyReference, 40, 24, 8)]
    [InlineData(SelectionPolicy.Learnability, 400, 16, 13)] // large enough to run the rows in parallel
    public void Incremental_delta_equals_recomputed_subset_scores(SelectionPolicy policy, int n, int dim, int chunk)
    {
        var random = new Random(5);
        var learner = Instances.Embeddings(random, n, dim, 10f, -10f, align: 0.3f);
        var reference = Instances.Embeddings(random, n, dim, 8f, -6f, align: 0.9f);
        var source = ScoreSources.SigmoidContrastive(policy, learner, reference);
        var s = Instances.SigmoidMatrix(policy, learner, reference, n);
        AssertIncrementalMatches(source, s, n, chunk, random);
    }

    [Fact]
    public void Dense_source_incremental_delta_equals_recomputed_subset_scores()
    {
        var random = new Random(8);
        var s = Instances.RandomMatrix(random, 30, 2.0);
        AssertIncrementalMatches(ScoreSources.Dense(Instances.Flatten(s), 30), s, 30, 4, random);
    }

    [Fact]
    public void Per_example_scores_are_the_policy_weighted_loss_differences()
    {
        var learnerLoss = new[] { 1.0f, 2.5f, 0.25f, 4f };
        var refLoss = new[] { 0.5f, 3f, 0.125f, 1f };
        var expected = new[] { 0.5, -0.5, 0.125, 3.0 };
        var source = ScoreSources.PerExampleLoss(SelectionPolicy.Learnability, learnerLoss, refLoss);
        var scores = new double[4];
        var state = source.Start(1);
        state.Initialize(scores);
        Assert.Equal(expected, scores);
        state.Add([3], [0, 1, 2], scores);
        Assert.Equal(expected, scores);
        Assert.Equal(3.0, state.SelectedScore);
        var hard = ScoreSources.PerExampleLoss(SelectionPolicy.HardLearner, learnerLoss, null).Start(1);
        hard.Initialize(scores);
        Assert.Equal(new[] { 1.0, 2.5, 0.25, 4.0 }, scores);
        var easy = ScoreSources.PerExampleLoss(SelectionPolicy.EasyReference, null, refLoss).Start(1);
        easy.Initialize(scores);
        Assert.Equal(new[] { -0.5, -3.0, -0.125, -1.0 }, scores);
    }

    /// <summary>Adds random chunks; after each, Δ(c|𝒮) must equal s(𝒮∪{c}) − s(𝒮) and SelectedScore must equal s(𝒮), all from the direct matrix.</summary>
    internal static void AssertIncrementalMatches(IScoreSource source, double[,] s, int n, int chunk, Random random)
    {
        var state = source.Start(chunk);
        var scores = new double[n];
        state.Initialize(scores);
        var order = Enumerable.Range(0, n).OrderBy(_ => random.Next()).ToArray();
        var selected = new List<int>();
        int checkedChunks = 0;
        for (int start = 0; start + chunk <= n; start += chunk)
        {
            double baseScore = Instances.SubsetScore(s, selected);
            // Δ(c|𝒮) for every candidate before the chunk is added.
            for (int i = start; i < n; i++)
            {
                int c = order[i];
                double want = Instances.SubsetScore(s, selected.Append(c)) - baseScore;
                Assert.True(Math.Abs(scores[c] - want) <= 1e-4 * Math.Max(1, Math.Abs(baseScore)), $"Δ({c}|𝒮, |𝒮|={selected.Count}) = {scores[c]}, want {want}");
            }

            var added = order.AsSpan(start, chunk);
            var candidates = order.AsSpan(start + chunk);
            state.Add(added, candidates, scores);
            selected.AddRange(added.ToArray());
            double wantTotal = Instances.SubsetScore(s, selected);
            Assert.True(Math.Abs(state.SelectedScore - wantTotal) <= 1e-4 * Math.Max(1, Math.Abs(wantTotal)), $"s(𝒮) = {state.SelectedScore}, want {wantTotal}");
            checkedChunks++;
        }

        Assert.True(checkedChunks >= 3);
    }
}
