using JestMesh.Data;

namespace JestMesh.Models.Tests;

/// <summary>All TorchSharp tests share one collection: the native runtime is not parallel-safe.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection : ICollectionFixture<RealPairs>
{
    public const string Name = "TorchSharp";
}

/// <summary>The real Fashion-MNIST pairs, built once for the collection.</summary>
public sealed class RealPairs
{
    public PairDataset Data { get; } = PairDataset.Build(new DataOptions { Seed = 7 });
}
