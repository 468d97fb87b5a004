using JestMesh.TestKit;

namespace JestMesh.Trainer.Tests;

/// <summary>TorchSharp (learner and reference) and the shared broker: one non-parallel collection around <see cref="SelectionFixture"/>.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SelectionCollection : ICollectionFixture<SelectionFixture>
{
    public const string Name = "Selection";
}
