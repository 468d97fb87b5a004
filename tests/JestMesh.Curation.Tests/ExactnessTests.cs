namespace JestMesh.Curation.Tests;

/// <summary>The sampler's subset frequencies against the exact probabilities of the sequential procedure (Plackett–Luce within a chunk).</summary>
[Trait("Tier", "Unit")]
public sealed class ExactnessTests
{
    private const int Draws = 20000;

    [Theory]
    [InlineData(6, 2, 2, 1.0, 1)]
    [InlineData(6, 2, 1, 1.0, 2)]
    [InlineData(8, 4, 4, 0.7, 3)]
    [InlineData(8, 4, 2, 0.7, 4)]
    public void Subset_frequencies_match_the_exact_sequential_probabilities(int n, int b, int chunks, double gain, int seed)
    {
        var s = Instances.RandomMatrix(new Random(seed), n, 1.0);
        var source = ScoreSources.Dense(Instances.Flatten(s), n);
        AssertMatches(source, s, n, b, chunks, gain, seed);
    }

    [Fact]
    public void Sigmoid_source_frequencies_match_the_exact_sequential_probabilities()
    {
        const int n = 6;
        var random = new Random(21);
        var learner = Instances.Embeddings(random, n, 5, 3f, -1f, align: 0.2f);
        var reference = Instances.Embeddings(random, n, 5, 2f, -0.5f, align: 0.9f);
        var source = ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference);
        var s = Instances.SigmoidMatrix(SelectionPolicy.Learnability, learner, reference, n);
        AssertMatches(source, s, n, 2, 2, 1.0, 22);
    }

    [Fact]
    public void One_chunk_is_independent_sampling_on_the_diagonal()
    {
        const int n = 7;
        const int b = 3;
        var s = Instances.RandomMatrix(new Random(31), n, 1.0);
        var diagonalOnly = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            diagonalOnly[i, i] = s[i, i];
        }

        var full = ScoreSources.Dense(Instances.Flatten(s), n);
        var diag = ScoreSources.Dense(Instances.Flatten(diagonalOnly), n);
        var options = new SamplerOptions { BatchSize = b, Chunks = 1, Gain = 1.5 };
        // Off-diagonal scores must not matter at all: same seed, same draw.
        for (int seed = 0; seed < 200; seed++)
        {
            Assert.Equal(JointSampler.Select(diag, options, new Random(seed)).Indices, JointSampler.Select(full, options, new Random(seed)).Indices);
        }

        // And the draw is Plackett–Luce ∝ exp(gain·S_cc) without replacement.
        AssertMatches(full, diagonalOnly, n, b, 1, 1.5, 32);
    }

    [Fact]
    public void Chi_square_check_rejects_a_wrong_distribution()
    {
        // Guards the guard: the same statistic must reject when the expected table is not the sampler's.
        const int n = 6;
        var s = Instances.RandomMatrix(new Random(1), n, 1.0);
        var source = ScoreSources.Dense(Instances.Flatten(s), n);
        var wrong = Exact(Instances.RandomMatrix(new Random(99), n, 1.0), n, 2, 2, 1.0);
        var observed = Observe(source, n, 2, 2, 1.0, 5);
        Assert.True(ChiSquare(observed, wrong, out int df) > Quantile999(df));
    }

    private static void AssertMatches(IScoreSource source, double[,] s, int n, int b, int chunks, double gain, int seed)
    {
        var exact = Exact(s, n, b, chunks, gain);
        Assert.Equal(1.0, exact.Values.Sum(), 9);
        var observed = Observe(source, n, b, chunks, gain, seed);
        double chi = ChiSquare(observed, exact, out int df);
        Assert.True(chi < Quantile999(df), $"chi-square {chi:F1} with {df} degrees of freedom exceeds the 99.9% quantile {Quantile999(df):F1}");
    }

    private static Dictionary<int, int> Observe(IScoreSource source, int n, int b, int chunks, double gain, int seed)
    {
        var counts = new Dictionary<int, int>();
        var options = new SamplerOptions { BatchSize = b, Chunks = chunks, Gain = gain };
        for (int i = 0; i < Draws; i++)
        {
            int mask = 0;
            foreach (int c in JointSampler.Select(source, options, new Random((seed * 1_000_003) + i)).Indices)
            {
                mask |= 1 << c;
            }

            counts[mask] = counts.GetValueOrDefault(mask) + 1;
        }

        return counts;
    }

    /// <summary>Pearson's statistic; cells expected below 5 are pooled into one.</summary>
    private static double ChiSquare(Dictionary<int, int> observed, Dictionary<int, double> exact, out int df)
    {
        double chi = 0;
        double pooledE = 0;
        double pooledO = 0;
        int cells = 0;
        foreach (var (mask, p) in exact)
        {
            double e = p * Draws;
            double o = observed.GetValueOrDefault(mask);
            if (e < 5)
            {
                pooledE += e;
                pooledO += o;
                continue;
            }

            chi += (o - e) * (o - e) / e;
            cells++;
        }

        // Subsets the exact law gives probability 0 must never be drawn.
        double impossible = observed.Where(kv => !exact.ContainsKey(kv.Key)).Sum(kv => kv.Value);
        Assert.Equal(0, impossible);
        if (pooledE > 0)
        {
            chi += (pooledO - pooledE) * (pooledO - pooledE) / Math.Max(pooledE, 1e-9);
            cells++;
        }

        df = cells - 1;
        return chi;
    }

    /// <summary>Wilson–Hilferty approximation of the chi-square 99.9% quantile.</summary>
    private static double Quantile999(int df)
    {
        const double z = 3.0902;
        double a = 2.0 / (9 * df);
        return df * Math.Pow(1 - a + (z * Math.Sqrt(a)), 3);
    }

    /// <summary>P(final subset) of the sequential procedure: chunk by chunk, an ordered Plackett–Luce draw of k candidates ∝ exp(gain·Δ(c|𝒮)).</summary>
    internal static Dictionary<int, double> Exact(double[,] s, int n, int b, int chunks, double gain)
    {
        var result = new Dictionary<int, double>();
        int k = b / chunks;
        void Chunk(int selectedMask, int chunkIndex, double p)
        {
            if (chunkIndex == chunks)
            {
                result[selectedMask] = result.GetValueOrDefault(selectedMask) + p;
                return;
            }

            var weight = new double[n];
            for (int c = 0; c < n; c++)
            {
                if ((selectedMask >> c & 1) == 1)
                {
                    continue;
                }

                double delta = s[c, c];
                for (int j = 0; j < n; j++)
                {
                    if ((selectedMask >> j & 1) == 1)
                    {
                        delta += s[c, j] + s[j, c];
                    }
                }

                weight[c] = Math.Exp(gain * delta);
            }

            // Enumerate ordered draws within the chunk; the logits stay fixed inside a chunk.
            void Draw(int chunkMask, int drawn, double q)
            {
                if (drawn == k)
                {
                    Chunk(selectedMask | chunkMask, chunkIndex + 1, q);
                    return;
                }

                double total = 0;
                for (int c = 0; c < n; c++)
                {
                    if (((selectedMask | chunkMask) >> c & 1) == 0)
                    {
                        total += weight[c];
                    }
                }

                for (int c = 0; c < n; c++)
                {
                    if (((selectedMask | chunkMask) >> c & 1) == 0)
                    {
                        Draw(chunkMask | (1 << c), drawn + 1, q * weight[c] / total);
                    }
                }
            }

            Draw(0, 0, p);
        }

        Chunk(0, 0, 1.0);
        return result;
    }
}
