using static TorchSharp.torch;

namespace JestMesh.Models.Tests;

[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class NativeRuntimeTests
{
    [Fact]
    public void Native_runtime_loads_and_multiplies_matrices()
    {
        using var a = arange(6, dtype: ScalarType.Float32).reshape(2, 3);
        using var b = ones(3, 2, dtype: ScalarType.Float32);
        using var c = a.matmul(b);
        Assert.Equal(new[] { 3f, 3f, 12f, 12f }, c.data<float>().ToArray());
    }
}
