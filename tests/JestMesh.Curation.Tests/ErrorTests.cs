namespace JestMesh.Curation.Tests;

[Trait("Tier", "Unit")]
public sealed class ErrorTests
{
    private static readonly IScoreSource Source = ScoreSources.Uniform(10);

    [Theory]
    [InlineData(11, 1, 1.0, "options.BatchSize", "11")]
    [InlineData(0, 1, 1.0, "options.BatchSize", "0")]
    [InlineData(10, 3, 1.0, "options.Chunks", "3")]
    [InlineData(10, 0, 1.0, "options.Chunks", "0")]
    [InlineData(10, 2, double.NaN, "options.Gain", "NaN")]
    [InlineData(10, 2, double.PositiveInfinity, "options.Gain", "Infinity")]
    [InlineData(10, 2, -1.0, "options.Gain", "-1")]
    public void Bad_options_name_the_option_and_its_value(int b, int chunks, double gain, string param, string value)
    {
        var e = Assert.Throws<ArgumentException>(() => JointSampler.Select(Source, new SamplerOptions { BatchSize = b, Chunks = chunks, Gain = gain }, new Random(0)));
        Assert.Equal(param, e.ParamName);
        Assert.Contains(value, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Embedding_shape_mismatch_names_the_array_and_lengths()
    {
        var e = Assert.Throws<ArgumentException>(() => new ContrastiveEmbeddings(new float[12], new float[10], 4, 3, 1, 0));
        Assert.Equal("text", e.ParamName);
        Assert.Contains("10", e.Message, StringComparison.Ordinal);
        Assert.Contains("4×3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Non_finite_embedding_names_the_position_and_value()
    {
        var image = new float[12];
        image[5] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => new ContrastiveEmbeddings(image, new float[12], 4, 3, 1, 0));
        Assert.Equal("image", e.ParamName);
        Assert.Contains("image[1, 2]", e.Message, StringComparison.Ordinal);
        Assert.Contains("NaN", e.Message, StringComparison.Ordinal);

        var text = new float[12];
        text[11] = float.NegativeInfinity;
        e = Assert.Throws<ArgumentException>(() => new ContrastiveEmbeddings(new float[12], text, 4, 3, 1, 0));
        Assert.Equal("text", e.ParamName);
        Assert.Contains("text[3, 2]", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<ArgumentException>(() => new ContrastiveEmbeddings(new float[12], new float[12], 4, 3, float.PositiveInfinity, 0));
        Assert.Equal("alpha", e.ParamName);
    }

    [Fact]
    public void Empty_inputs_are_rejected()
    {
        Assert.Equal("count", Assert.Throws<ArgumentException>(() => new ContrastiveEmbeddings([], [], 0, 3, 1, 0)).ParamName);
        Assert.Equal("learnerLoss", Assert.Throws<ArgumentException>(() => ScoreSources.PerExampleLoss(SelectionPolicy.Learnability, [], [])).ParamName);
        Assert.Equal("count", Assert.Throws<ArgumentException>(() => ScoreSources.Uniform(0)).ParamName);
        Assert.Equal("matrix", Assert.Throws<ArgumentException>(() => ScoreSources.Dense([], 1)).ParamName);
    }

    [Fact]
    public void Learner_and_reference_must_agree_in_shape()
    {
        var a = new ContrastiveEmbeddings(new float[12], new float[12], 4, 3, 1, 0);
        var fewer = new ContrastiveEmbeddings(new float[9], new float[9], 3, 3, 1, 0);
        var wider = new ContrastiveEmbeddings(new float[16], new float[16], 4, 4, 1, 0);
        var e = Assert.Throws<ArgumentException>(() => ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, a, fewer));
        Assert.Equal("reference", e.ParamName);
        Assert.Contains("3 examples", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ScoreSources.SoftmaxContrastive(SelectionPolicy.Learnability, a, wider));
        Assert.Equal("reference", e.ParamName);
        Assert.Contains("dim 4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_the_policy_needs_must_be_given()
    {
        var a = new ContrastiveEmbeddings(new float[12], new float[12], 4, 3, 1, 0);
        Assert.Equal("reference", Assert.Throws<ArgumentException>(() => ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, a, null)).ParamName);
        Assert.Equal("learner", Assert.Throws<ArgumentException>(() => ScoreSources.SigmoidContrastive(SelectionPolicy.HardLearner, null, a)).ParamName);
        Assert.Equal("reference", Assert.Throws<ArgumentException>(() => ScoreSources.SigmoidContrastive(SelectionPolicy.EasyReference, a, null)).ParamName);
        Assert.Equal("learner", Assert.Throws<ArgumentException>(() => ScoreSources.SigmoidContrastive(SelectionPolicy.Uniform, null, null)).ParamName);
        Assert.Equal("referenceLoss", Assert.Throws<ArgumentException>(() => ScoreSources.PerExampleLoss(SelectionPolicy.EasyReference, [1f], null)).ParamName);
    }

    [Fact]
    public void Per_example_losses_must_be_finite_and_the_same_length()
    {
        var e = Assert.Throws<ArgumentException>(() => ScoreSources.PerExampleLoss(SelectionPolicy.Learnability, [1f, 2f, 3f], [1f, 2f]));
        Assert.Equal("referenceLoss", e.ParamName);
        Assert.Contains("2 values", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => ScoreSources.PerExampleLoss(SelectionPolicy.Learnability, [1f, float.PositiveInfinity], [1f, 2f]));
        Assert.Equal("learnerLoss", e.ParamName);
        Assert.Contains("learnerLoss[1]", e.Message, StringComparison.Ordinal);
        Assert.Contains("Infinity", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dense_matrix_must_be_square_and_finite()
    {
        Assert.Contains("3×3", Assert.Throws<ArgumentException>(() => ScoreSources.Dense(new float[8], 3)).Message, StringComparison.Ordinal);
        var m = new float[9];
        m[4] = float.NaN;
        Assert.Contains("matrix[1, 1]", Assert.Throws<ArgumentException>(() => ScoreSources.Dense(m, 3)).Message, StringComparison.Ordinal);
    }
}
