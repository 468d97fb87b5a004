namespace JestMesh.Curation.Tests;

[Trait("Tier", "Unit")]
public sealed class InvariantTests
{
    public static TheoryData<string> Sources => new() { "sigmoid", "softmax", "per-example", "dense", "uniform", "hard-learner", "easy-reference" };

    [Theory]
    [MemberData(nameof(Sources))]
    public void Selects_b_distinct_indices_in_range_and_the_seed_reproduces_them(string kind)
    {
        const int n = 300;
        var source = Make(kind, n);
        var options = new SamplerOptions { BatchSize = 64, Chunks = 8, Gain = 1 };
        var first = JointSampler.Select(source, options, new Random(42));
        Assert.Equal(64, first.Indices.Length);
        Assert.Equal(64, first.Indices.Distinct().Count());
        Assert.All(first.Indices, i => Assert.InRange(i, 0, n - 1));
        Assert.Equal(8, first.ChunkEntropy.Length);
        Assert.True(first.Elapsed > TimeSpan.Zero);

        var again = JointSampler.Select(source, options, new Random(42));
        Assert.Equal(first.Indices, again.Indices);
        Assert.Equal(first.Score, again.Score);
        Assert.Equal(first.ChunkEntropy, again.ChunkEntropy);

        var other = JointSampler.Select(source, options, new Random(43));
        Assert.NotEqual(first.Indices, other.Indices);
    }

    [Fact]
    public void Greedy_ignores_the_seed_and_takes_the_argmax_of_delta_each_step()
    {
        const int n = 40;
        var s = Instances.RandomMatrix(new Random(6), n, 1.0);
        var source = ScoreSources.Dense(Instances.Flatten(s), n);
        var options = new SamplerOptions { BatchSize = 10, Chunks = 10, Greedy = true };
        var a = JointSampler.Select(source, options, new Random(1));
        var b = JointSampler.Select(source, options, new Random(2));
        Assert.Equal(a.Indices, b.Indices);

        var selected = new List<int>();
        for (int step = 0; step < 10; step++)
        {
            double baseScore = Instances.SubsetScore(s, selected);
            int best = Enumerable.Range(0, n).Where(c => !selected.Contains(c))
                .MaxBy(c => Instances.SubsetScore(s, selected.Append(c)) - baseScore);
            selected.Add(best);
        }

        Assert.Equal(selected, a.Indices);
        Assert.Equal(Instances.SubsetScore(s, selected), a.Score, 3);
    }

    [Fact]
    public void Score_is_the_subset_score_of_the_returned_indices()
    {
        var random = new Random(9);
        var learner = Instances.Embeddings(random, 120, 16, 10f, -10f, align: 0.3f);
        var reference = Instances.Embeddings(random, 120, 16, 10f, -10f, align: 0.8f);
        var source = ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference);
        var s = Instances.SigmoidMatrix(SelectionPolicy.Learnability, learner, reference, 120);
        foreach (int chunks in new[] { 1, 4, 16 })
        {
            var result = JointSampler.Select(source, new SamplerOptions { BatchSize = 48, Chunks = chunks }, new Random(chunks));
            double want = Instances.SubsetScore(s, result.Indices);
            Assert.True(Math.Abs(result.Score - want) <= 1e-4 * Math.Abs(want), $"chunks {chunks}: score {result.Score}, want {want}");
        }
    }

    [Fact]
    public void Zero_gain_and_uniform_have_maximal_entropy_per_chunk()
    {
        var source = Make("dense", 100);
        var flat = JointSampler.Select(source, new SamplerOptions { BatchSize = 40, Chunks = 4, Gain = 0 }, new Random(1));
        var uniform = JointSampler.Select(ScoreSources.Uniform(100), new SamplerOptions { BatchSize = 40, Chunks = 4 }, new Random(1));
        for (int t = 0; t < 4; t++)
        {
            Assert.Equal(Math.Log(100 - (10 * t)), flat.ChunkEntropy[t], 9);
            Assert.Equal(Math.Log(100 - (10 * t)), uniform.ChunkEntropy[t], 9);
        }

        Assert.True(double.IsNaN(uniform.Score));
        var sharp = JointSampler.Select(source, new SamplerOptions { BatchSize = 40, Chunks = 4, Gain = 100 }, new Random(1));
        Assert.True(sharp.ChunkEntropy[0] < flat.ChunkEntropy[0] - 1);
    }

    [Fact]
    public void Uniform_selection_covers_every_example_about_equally()
    {
        var source = ScoreSources.Uniform(10);
        var counts = new int[10];
        for (int seed = 0; seed < 5000; seed++)
        {
            foreach (int i in JointSampler.Select(source, new SamplerOptions { BatchSize = 2, Chunks = 1, Greedy = true }, new Random(seed)).Indices)
            {
                counts[i]++;
            }
        }

        // Expected 1000 each; 5 standard deviations ≈ 150.
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
    }

    internal static IScoreSource Make(string kind, int n)
    {
        var random = new Random(n);
        var learner = Instances.Embeddings(random, n, 16, 10f, -10f, align: 0.3f);
        var reference = Instances.Embeddings(random, n, 16, 10f, -10f, align: 0.8f);
        var losses = Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray();
        var refLosses = Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray();
        return kind switch
        {
            "sigmoid" => ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference),
            "hard-learner" => ScoreSources.SigmoidContrastive(SelectionPolicy.HardLearner, learner, null),
            "easy-reference" => ScoreSources.SigmoidContrastive(SelectionPolicy.EasyReference, null, reference),
            "softmax" => ScoreSources.SoftmaxContrastive(SelectionPolicy.Learnability, learner, reference),
            "per-example" => ScoreSources.PerExampleLoss(SelectionPolicy.Learnability, losses, refLosses),
            "dense" => ScoreSources.Dense(Instances.Flatten(Instances.RandomMatrix(random, n, 0.5)), n),
            _ => ScoreSources.SigmoidContrastive(SelectionPolicy.Uniform, learner, null),
        };
    }
}
