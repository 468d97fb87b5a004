using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models.Tests;

[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class CheckpointTests(RealPairs pairs) : IDisposable
{
    private readonly PairDataset _data = pairs.Data;
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Round_trip_gives_identical_outputs_and_metadata()
    {
        manual_seed(11);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        Train(model, 5);
        ModelCheckpoint.Save(_dir, model, new CheckpointMetadata { DataFingerprint = _data.Fingerprint, DataSeed = 7, Step = 5 });
        var (loaded, meta) = ModelCheckpoint.Load(_dir, CPU);
        using (loaded)
        {
            var (pixels, tokens) = Inputs(50);
            var a = model.Embed(pixels, 50, tokens);
            var b = loaded.Embed(pixels, 50, tokens);
            Assert.Equal(a.Image, b.Image);
            Assert.Equal(a.Text, b.Text);
            Assert.Equal(a.Alpha, b.Alpha);
            Assert.Equal(a.Beta, b.Beta);
            Assert.Equal(_data.Fingerprint, meta.DataFingerprint);
            Assert.Equal(5, meta.Step);
            Assert.Equal(64, meta.Dim);
            Assert.Equal(ModelCheckpoint.HashFile(Path.Combine(_dir, ModelCheckpoint.WeightsFile)), meta.Sha256);
        }
    }

    [Fact]
    public void Tampered_weights_are_refused_naming_the_hash_mismatch()
    {
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        ModelCheckpoint.Save(_dir, model, new CheckpointMetadata());
        var weights = Path.Combine(_dir, ModelCheckpoint.WeightsFile);
        var bytes = File.ReadAllBytes(weights);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(weights, bytes);
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(_dir, CPU));
        Assert.Contains("SHA-256", e.Message, StringComparison.Ordinal);
        Assert.Contains(weights, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Other_architecture_is_refused()
    {
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        ModelCheckpoint.Save(_dir, model, new CheckpointMetadata());
        var metaPath = Path.Combine(_dir, ModelCheckpoint.MetadataFile);
        File.WriteAllText(metaPath, File.ReadAllText(metaPath).Replace(ModelConfig.SiglipArchitecture, "resnet50/v9", StringComparison.Ordinal));
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(_dir, CPU));
        Assert.Contains("resnet50/v9", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Weights_that_do_not_fit_the_recorded_dims_are_refused()
    {
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        ModelCheckpoint.Save(_dir, model, new CheckpointMetadata());
        var metaPath = Path.Combine(_dir, ModelCheckpoint.MetadataFile);
        var json = File.ReadAllText(metaPath).Replace("\"image_hidden\": 128", "\"image_hidden\": 96", StringComparison.Ordinal);
        Assert.Contains("\"image_hidden\": 96", json, StringComparison.Ordinal);
        File.WriteAllText(metaPath, json);
        Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(_dir, CPU));
    }

    [Fact]
    public void Missing_checkpoint_names_the_directory()
    {
        var e = Assert.Throws<FileNotFoundException>(() => ModelCheckpoint.Load(Path.Combine(_dir, "nope"), CPU));
        Assert.Contains("nope", e.Message, StringComparison.Ordinal);
    }

    private (byte[] Pixels, int[][] Tokens) Inputs(int n)
    {
        var ex = _data.TestPairs.Take(n).ToArray();
        return (ex.SelectMany(p => _data.Test.Image(p.ImageIndex).ToArray()).ToArray(), ex.Select(p => p.Tokens).ToArray());
    }

    private void Train(SiglipModel model, int steps)
    {
        using var tensors = new PairTensors(_data.Curated.Take(64).ToArray(), _data.Train);
        using var trainer = new ModelTrainer(model, new TrainingOptions { TotalSteps = steps, WarmupSteps = 1 });
        for (var i = 0; i < steps; i++)
        {
            trainer.TrainStep(() => model.Loss(tensors.Images, tensors.Tokens));
        }
    }
}
