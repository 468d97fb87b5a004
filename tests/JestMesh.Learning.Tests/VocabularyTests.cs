using JestMesh.Curation;

namespace JestMesh.Learning.Tests;

[Trait("Tier", "Unit")]
public sealed class VocabularyTests
{
    [Theory]
    [InlineData(SelectionPolicy.Learnability, false, "jest")]
    [InlineData(SelectionPolicy.Learnability, true, "learnability-independent")]
    [InlineData(SelectionPolicy.EasyReference, false, "easy-reference")]
    [InlineData(SelectionPolicy.EasyReference, true, "easy-reference-independent")]
    [InlineData(SelectionPolicy.HardLearner, false, "hard-learner")]
    [InlineData(SelectionPolicy.Uniform, false, "uniform")]
    public void Run_names_parse_back_to_their_policy_and_independence(SelectionPolicy policy, bool independent, string name)
    {
        Assert.Equal(name, Policies.RunName(policy, independent));
        Assert.True(Policies.TryParseRun(name, out var parsed, out var parsedIndependent));
        Assert.Equal((policy, independent), (parsed, parsedIndependent));
    }

    [Fact]
    public void Every_policy_name_parses_and_anything_else_is_refused_with_the_valid_names()
    {
        foreach (var name in Policies.Names)
        {
            Assert.Equal(name, Policies.Name(Policies.Parse(name)));
        }
        var error = Assert.Throws<ArgumentException>(() => Policies.Parse("JEST", "--policy"));
        Assert.Contains("--policy 'JEST'", error.Message, StringComparison.Ordinal);
        Assert.Contains("easy-reference", error.Message, StringComparison.Ordinal);
        Assert.False(Policies.TryParseRun("uniform-independent", out _, out _));
    }

    [Fact]
    public void Only_learnability_and_hard_learner_need_the_learner_and_only_learnability_and_easy_reference_the_reference()
    {
        Assert.Equal([SelectionPolicy.Learnability, SelectionPolicy.HardLearner], Enum.GetValues<SelectionPolicy>().Where(Policies.NeedsLearner));
        Assert.Equal([SelectionPolicy.Learnability, SelectionPolicy.EasyReference], Enum.GetValues<SelectionPolicy>().Where(Policies.NeedsReference));
    }

    [Theory]
    [InlineData(128, 0.5, 256)]
    [InlineData(128, 0.8, 640)]
    [InlineData(128, 0.9, 1280)]
    [InlineData(512, 0.8, 2560)]
    [InlineData(100, 0.7, 333)]
    public void Super_batch_size_and_batch_size_follow_one_rule_both_ways(int b, double f, int n)
    {
        Assert.Equal(n, SuperBatchSizing.SuperBatchSize(b, f));
        Assert.Equal(b, SuperBatchSizing.BatchSize(n, f));
    }

    [Fact]
    public void A_filter_ratio_outside_zero_to_one_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SuperBatchSizing.SuperBatchSize(128, 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SuperBatchSizing.BatchSize(640, -0.1));
    }
}
