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
}
