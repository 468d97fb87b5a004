using JestMesh.Data;
using JestMesh.TestKit;

namespace JestMesh.Selection.Tests;

/// <summary>TorchSharp (reference embeddings) and the shared broker: one non-parallel collection.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SelectionCollection : ICollectionFixture<SelectionFixture>
{
    public const string Name = "Selection";
}

/// <summary>The real pairs and a reference model, built once.</summary>
public sealed class SelectionFixture : IDisposable
{
    public SelectionFixture()
    {
        Broker = TestBroker.Shared();
        Feeder = new ScoredFeeder(PairDataset.Build(new DataOptions { Seed = 7 }));
    }

    public TestBroker Broker { get; }

    public ScoredFeeder Feeder { get; }

    public void Dispose() => Feeder.Dispose();
}
