using JestMesh.Curation;

namespace JestMesh.Learning.Tests;

[Trait("Tier", "Unit")]
public sealed class CurationStepTests
{
    private const int N = 64;
    private const int Dim = 8;

    private static ContrastiveEmbeddings Embeddings(int seed, int n = N, float scale = 1f)
    {
        var random = new Random(seed);
        float[] Rows()
        {
            var rows = new float[n * Dim];
            for (var r = 0; r < n; r++)
            {
                var row = rows.AsSpan(r * Dim, Dim);
                for (var k = 0; k < Dim; k++)
                {
                    row[k] = (float)(random.NextDouble() - 0.5);
                }
                var norm = MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.SumOfSquares(row));
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, scale / norm, row);
            }
            return rows;
        }
        return new ContrastiveEmbeddings(Rows(), Rows(), n, Dim, 10f, -10f);
    }

    private static CurationSettings Jest(int chunks = 4) => new() { Policy = SelectionPolicy.Learnability, FilterRatio = 0.75, Chunks = chunks, Gain = 1, Seed = 7 };

    [Fact]
    public void The_same_inputs_and_sequence_select_the_same_batch_and_another_sequence_draws_other_noise()
    {
        var reference = Embeddings(1);
        var learner = new LearnerView(Embeddings(2));
        var first = CurationStep.Select(Jest(), N, reference, learner, sequence: 5);
        var again = CurationStep.Select(Jest(), N, reference, learner, sequence: 5);
        var next = CurationStep.Select(Jest(), N, reference, learner, sequence: 6);
        Assert.Equal(16, first.Selected.Length);
        Assert.Equal(first.Selected, again.Selected);
        Assert.NotEqual(first.Selected, next.Selected);
        Assert.Equal(N - 16, first.Filtered().Length);
        Assert.Empty(first.Selected.Intersect(first.Filtered()));
        Assert.Equal(4, first.Stats.ChunkEntropy.Length);
    }

    [Fact]
    public void Chunks_that_do_not_divide_the_batch_are_a_precondition_failure_naming_N_and_b()
    {
        var error = Assert.Throws<CurationPreconditionException>(() =>
            CurationStep.Select(Jest(chunks: 7), N, Embeddings(1), new LearnerView(Embeddings(2)), 1));
        Assert.Contains("N = 64", error.Message, StringComparison.Ordinal);
        Assert.Contains("b = 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Learner_rows_that_are_not_normalised_are_refused_naming_the_row()
    {
        var error = Assert.Throws<InvalidCurationInputException>(() =>
            CurationStep.Select(Jest(), N, Embeddings(1), new LearnerView(Embeddings(2, scale: 3f)), 1, "scores"));
        Assert.Contains("scores.image_embeddings row 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Learner_scores_for_another_number_of_candidates_are_refused()
    {
        var error = Assert.Throws<InvalidCurationInputException>(() =>
            CurationStep.Select(Jest(), N, Embeddings(1), new LearnerView(Embeddings(2, n: N - 1)), 1, "scores"));
        Assert.Contains("63 rows for 64 candidates", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_policy_that_needs_the_learner_without_its_scores_is_refused()
    {
        Assert.Throws<InvalidCurationInputException>(() => CurationStep.Select(Jest(), N, Embeddings(1), null, 1));
    }

    [Fact]
    public void Uniform_needs_no_scores_and_learner_free_policies_ignore_the_learner()
    {
        var uniform = CurationStep.Select(new CurationSettings { Policy = SelectionPolicy.Uniform, FilterRatio = 0.75, Chunks = 1, Seed = 3 }, N, null, null, 1);
        Assert.Equal(16, uniform.Selected.Distinct().Count());
        var easy = new CurationSettings { Policy = SelectionPolicy.EasyReference, FilterRatio = 0.75, Chunks = 4, Seed = 3 };
        Assert.Equal(CurationStep.Select(easy, N, Embeddings(1), null, 1).Selected, CurationStep.Select(easy, N, Embeddings(1), new LearnerView(Embeddings(9)), 1).Selected);
    }

    [Theory]
    [InlineData(1.0, 16, 1.0)]
    [InlineData(0.8, 0, 1.0)]
    [InlineData(0.8, 16, double.NaN)]
    public void Settings_out_of_range_are_refused_naming_the_field(double filterRatio, int chunks, double gain)
    {
        var settings = new CurationSettings { Policy = SelectionPolicy.Learnability, FilterRatio = filterRatio, Chunks = chunks, Gain = gain };
        var error = Assert.Throws<InvalidCurationInputException>(() => settings.Validate("open"));
        Assert.StartsWith("open.", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The softmax loss: CurationStep selects what the softmax source and the sampler select on their own, with the reference's
    /// InfoNCE losses supplied or computed, and its diagnostics are the source's first-chunk scores (kept from the sampler's pass).
    /// </summary>
    [Theory]
    [InlineData(SelectionPolicy.Learnability, 4, false)]
    [InlineData(SelectionPolicy.HardLearner, 1, false)]
    [InlineData(SelectionPolicy.EasyReference, 4, true)]
    public void Softmax_selects_what_the_softmax_source_selects_with_the_reference_losses_supplied_or_not(SelectionPolicy policy, int chunks, bool greedy)
    {
        var reference = Embeddings(1);
        var learner = Embeddings(2);
        var settings = new CurationSettings { Policy = policy, FilterRatio = 0.75, Chunks = chunks, Gain = 10, Seed = 7, Greedy = greedy, Loss = ScoreLoss.Softmax };
        var supplied = InfoNceLosses.Compute(reference);
        var view = Policies.NeedsLearner(policy) ? new LearnerView(learner) : null;
        foreach (var sequence in new long[] { 1, 2, 9 })
        {
            var source = ScoreSources.SoftmaxContrastive(policy, Policies.NeedsLearner(policy) ? learner : null, Policies.NeedsReference(policy) ? reference : null);
            var direct = JointSampler.Select(source, settings.SamplerFor(N), new Random(SamplerSeeds.ForBatch(settings.Seed, sequence)));
            var computed = CurationStep.Select(settings, N, reference, view, sequence);
            var given = CurationStep.Select(settings, N, reference, view, sequence, referenceInfoNce: supplied);
            Assert.Equal(direct.Indices, computed.Selected);
            Assert.Equal(direct.Indices, given.Selected);
            Assert.Equal(direct.Score, computed.Stats.SubsetScore);
            Assert.Equal(direct.Score, given.Stats.SubsetScore);

            var firstChunk = new double[N];
            source.Start(N / 4 / chunks).Initialize(firstChunk);
            Assert.Equal(firstChunk.Average(), computed.Stats.MeanScoreAll);
            Assert.Equal(direct.Indices.Average(i => firstChunk[i]), computed.Stats.MeanScoreSelected, 12);
            Assert.Equal(computed.Stats.MeanScoreAll, given.Stats.MeanScoreAll);
        }
    }

    [Fact]
    public void Softmax_refuses_a_learner_alpha_whose_logits_overflow_float32_naming_the_field()
    {
        var reference = Embeddings(1);
        var settings = Jest() with { Loss = ScoreLoss.Softmax };
        var learner = Embeddings(2);
        var huge = new ContrastiveEmbeddings(learner.Image.ToArray(), learner.Text.ToArray(), N, Dim, float.MaxValue, 0f);
        var error = Assert.Throws<InvalidCurationInputException>(() => CurationStep.Select(settings, N, reference, new LearnerView(huge), 1, "scores"));
        Assert.Contains("scores.alpha", error.Message, StringComparison.Ordinal);
        // The source itself refuses it too (a NaN selection otherwise), and takes a large α that fits (the running-max path).
        Assert.Throws<ArgumentException>(() => ScoreSources.SoftmaxContrastive(SelectionPolicy.HardLearner, huge, null));
        var large = new ContrastiveEmbeddings(learner.Image.ToArray(), learner.Text.ToArray(), N, Dim, 1e30f, 0f);
        var outcome = CurationStep.Select(settings, N, reference, new LearnerView(large), 1, "scores");
        Assert.True(double.IsFinite(outcome.Stats.SubsetScore));
        // Negative and zero temperatures are finite logits: taken.
        foreach (var alpha in new[] { -10f, 0f })
        {
            var other = new ContrastiveEmbeddings(learner.Image.ToArray(), learner.Text.ToArray(), N, Dim, alpha, 0f);
            Assert.Equal(16, CurationStep.Select(settings, N, reference, new LearnerView(other), 1).Selected.Length);
        }
    }
}
