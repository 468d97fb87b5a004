using JestMesh.ServiceDefaults;

namespace JestMesh.Trainer.Tests;

/// <summary>Trainer:SelectionAddress names one Selection or every replica, and a bad one stops the trainer naming it.</summary>
[Trait("Tier", "Unit")]
public sealed class SelectionAddressTests
{
    private static TrainerOptions Options(string address) =>
        new() { SelectionAddress = address, ApiKey = "0123456789abcdef0123456789abcdef", Job = "default", CheckpointDirectory = "checkpoints" };

    [Theory]
    [InlineData("http://127.0.0.1:5080")]
    [InlineData("http://127.0.0.1:5080,http://127.0.0.1:5081")]
    [InlineData("https://selection-0:8080, https://selection-1:8080")]
    public void One_address_or_several_of_one_scheme_are_accepted(string address) =>
        Assert.Empty(ValidatedOptions.Validate(Options(address), TrainerOptions.SectionName));

    [Theory]
    [InlineData("127.0.0.1:5080", "'127.0.0.1:5080'")]
    [InlineData("http://127.0.0.1:5080,", "'' in 'http://127.0.0.1:5080,'")]
    [InlineData("http://a:1,https://b:2", "mixes http:// and https://")]
    [InlineData("http://a:1/curate", "has a path")]
    public void A_bad_address_is_refused_naming_the_setting_and_the_part(string address, string expected)
    {
        var failure = Assert.Single(ValidatedOptions.Validate(Options(address), TrainerOptions.SectionName));
        Assert.Contains("Trainer:SelectionAddress", failure, StringComparison.Ordinal);
        Assert.Contains(expected, failure, StringComparison.Ordinal);
    }
}
