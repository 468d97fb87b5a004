using JestMesh.TestKit;

namespace JestMesh.Selection.Tests;

/// <summary>Every test class of this project runs in exactly one tier (scripts/test.sh --tier).</summary>
[Trait("Tier", "Unit")]
public sealed class TierTests
{
    [Fact]
    public void Every_test_class_carries_one_known_tier() => Assert.Empty(Tiers.Unclassified(typeof(TierTests).Assembly));
}
