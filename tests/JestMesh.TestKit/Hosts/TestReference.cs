using JestMesh.Data;
using JestMesh.Models;
using TorchSharp;

namespace JestMesh.TestKit;

/// <summary>
/// Reference checkpoints for tests that check plumbing, equality or accounting, which need no good
/// reference: a seeded, untrained SigLIP model saved with the data settings it stands for.
/// </summary>
public static class TestReference
{
    /// <summary>Saves the reference for <paramref name="data"/> in <paramref name="directory"/> and returns the directory.</summary>
    public static string SaveUntrained(string directory, PairDataset data, long seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        torch.random.manual_seed(seed);
        using var model = SiglipModel.Create(new ModelConfig(), torch.CPU);
        var options = data.Options;
        ModelCheckpoint.Save(directory, model, new CheckpointMetadata
        {
            DataFingerprint = data.Fingerprint,
            DataSeed = options.Seed,
            SwappedShare = options.SwappedShare,
            CuratedSize = options.CuratedSize,
        });
        return directory;
    }
}
