using JestMesh.Data;

namespace JestMesh.TestKit;

/// <summary>
/// The shared broker, the real pairs and a reference model, built once per test collection. xunit
/// finds collection definitions only in the test assembly: each test project that uses this fixture
/// declares its own <c>[CollectionDefinition(..., DisableParallelization = true)]</c> class for it
/// (TorchSharp and the shared broker: not parallel).
/// </summary>
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
