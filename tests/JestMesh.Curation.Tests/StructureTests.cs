namespace JestMesh.Curation.Tests;

/// <summary>JEST Fig. 2 in miniature: on structured scores the selected batch's score rises with chunks and with the filtering ratio, and joint beats independent.</summary>
[Trait("Tier", "Unit")]
public sealed class StructureTests
{
    private const int B = 32;
    private const int Seeds = 20;

    [Fact]
    public void Selected_score_rises_with_the_number_of_chunks()
    {
        var s = Clustered(160, seed: 1);
        var means = new[] { 1, 2, 4, 8, 16 }.Select(chunks => MeanScore(s, 160, chunks)).ToArray();
        for (int i = 1; i < means.Length; i++)
        {
            Assert.True(means[i] > means[i - 1], $"mean score with chunks {string.Join(", ", means.Select(m => m.ToString("F2")))} is not increasing");
        }
    }

    [Fact]
    public void Selected_score_rises_with_the_filtering_ratio()
    {
        // f = 1 − b/N = 0.5, 0.8, 0.9 with b fixed.
        var means = new[] { 64, 160, 320 }.Select(n => MeanScore(Clustered(n, seed: 2), n, 16)).ToArray();
        Assert.True(means[1] > means[0] && means[2] > means[1], $"mean score for f = 0.5, 0.8, 0.9: {string.Join(", ", means.Select(m => m.ToString("F2")))}");
    }

    [Fact]
    public void Joint_selection_beats_independent_on_sigmoid_learnability()
    {
        var random = new Random(4);
        var (learner, reference) = ClusteredEmbeddings(random, 256, 16);
        var source = ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference);
        for (int seed = 0; seed < 10; seed++)
        {
            double joint = JointSampler.Select(source, new SamplerOptions { BatchSize = 64, Chunks = 16 }, new Random(seed)).Score;
            double independent = JointSampler.Select(source, new SamplerOptions { BatchSize = 64, Chunks = 1 }, new Random(seed)).Score;
            Assert.True(joint > independent, $"seed {seed}: joint {joint:F2} ≤ independent {independent:F2}");
        }
    }

    /// <summary>Examples in 8 clusters; the reference sees the clusters sharply, the learner through noise.</summary>
    private static (ContrastiveEmbeddings Learner, ContrastiveEmbeddings Reference) ClusteredEmbeddings(Random random, int n, int dim)
    {
        var centres = Enumerable.Range(0, 8 * dim).Select(_ => Instances.Normal(random)).ToArray();
        var arrays = new float[4][];
        for (int a = 0; a < 4; a++)
        {
            arrays[a] = new float[n * dim];
        }

        for (int i = 0; i < n; i++)
        {
            int c = random.Next(8);
            for (int t = 0; t < dim; t++)
            {
                float centre = centres[(c * dim) + t];
                arrays[0][(i * dim) + t] = centre + Instances.Normal(random);
                arrays[1][(i * dim) + t] = centre + Instances.Normal(random);
                arrays[2][(i * dim) + t] = centre + (0.3f * Instances.Normal(random));
                arrays[3][(i * dim) + t] = centre + (0.3f * Instances.Normal(random));
            }
        }

        foreach (var m in arrays)
        {
            Instances.Normalise(m, n, dim);
        }

        return (new ContrastiveEmbeddings(arrays[0], arrays[1], n, dim, 5f, -2f), new ContrastiveEmbeddings(arrays[2], arrays[3], n, dim, 5f, -2f));
    }

    private static double MeanScore(double[,] s, int n, int chunks)
    {
        var source = ScoreSources.Dense(Instances.Flatten(s), n);
        double total = 0;
        for (int seed = 0; seed < Seeds; seed++)
        {
            total += JointSampler.Select(source, new SamplerOptions { BatchSize = B, Chunks = chunks, Gain = 1 }, new Random(seed)).Score;
        }

        return total / Seeds;
    }

    /// <summary>8 clusters: pairs in one cluster help, pairs across clusters hurt slightly; noisy diagonal.</summary>
    private static double[,] Clustered(int n, int seed)
    {
        var random = new Random(seed);
        var cluster = Enumerable.Range(0, n).Select(_ => random.Next(8)).ToArray();
        var s = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                s[i, j] = (float)(i == j
                    ? 0.5 * Instances.Normal(random)
                    : (cluster[i] == cluster[j] ? 0.3 : -0.05) + (0.05 * Instances.Normal(random)));
            }
        }

        return s;
    }
}
