using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace JestMesh.Models;

/// <summary>What a checkpoint holds besides its weights; the SHA-256 covers the weights file byte for byte.</summary>
public sealed record CheckpointMetadata
{
    public string Architecture { get; init; } = ModelConfig.SiglipArchitecture;

    public int Dim { get; init; }

    public ModelConfig Config { get; init; } = new();

    public string DataFingerprint { get; init; } = "";

    public int DataSeed { get; init; }

    public double SwappedShare { get; init; }

    public int CuratedSize { get; init; }

    public double DuplicateShare { get; init; }

    public int Step { get; init; }

    public string Sha256 { get; init; } = "";

    public DateTimeOffset CreatedUtc { get; init; }

    /// <summary>Free-form numbers worth keeping with the weights (e.g. final evaluation).</summary>
    public Dictionary<string, double> Metrics { get; init; } = [];
}

/// <summary>Saves and loads SigLIP checkpoints (weights + metadata.json) and refuses tampered or mismatched ones.</summary>
public static class ModelCheckpoint
{
    public const string WeightsFile = "model.bin";
    public const string MetadataFile = "metadata.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Save(string directory, SiglipModel model, CheckpointMetadata metadata)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(metadata);
        Directory.CreateDirectory(directory);
        var weights = Path.Combine(directory, WeightsFile);
        model.save(weights);
        var complete = metadata with
        {
            Architecture = ModelConfig.SiglipArchitecture,
            Config = model.Config,
            Dim = model.Config.Dim,
            Sha256 = HashFile(weights),
            CreatedUtc = metadata.CreatedUtc == default ? DateTimeOffset.UtcNow : metadata.CreatedUtc,
        };
        File.WriteAllText(Path.Combine(directory, MetadataFile), JsonSerializer.Serialize(complete, Json));
    }

    public static CheckpointMetadata ReadMetadata(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var path = Path.Combine(directory, MetadataFile);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"checkpoint metadata {path} is missing: is {directory} a checkpoint written by `jestmesh reference train`?", path);
        }

        try
        {
            return JsonSerializer.Deserialize<CheckpointMetadata>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"checkpoint metadata {path} is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"checkpoint metadata {path} is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>Loads a checkpoint after checking its architecture and the SHA-256 of its weights.</summary>
    public static (SiglipModel Model, CheckpointMetadata Metadata) Load(string directory, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var metadata = ReadMetadata(directory);
        if (metadata.Architecture != ModelConfig.SiglipArchitecture)
        {
            throw new InvalidDataException(
                $"checkpoint {directory} holds architecture '{metadata.Architecture}', this build expects '{ModelConfig.SiglipArchitecture}'.");
        }

        if (metadata.Dim != metadata.Config.Dim)
        {
            throw new InvalidDataException($"checkpoint {directory}: metadata dim {metadata.Dim} disagrees with its config's dim {metadata.Config.Dim}.");
        }

        var weights = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weights))
        {
            throw new FileNotFoundException($"checkpoint weights {weights} are missing.", weights);
        }

        var actual = HashFile(weights);
        if (!string.Equals(actual, metadata.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException(
                $"checkpoint weights {weights} have SHA-256 {actual} but metadata.json records {metadata.Sha256}: the file was changed or corrupted; refusing to load it.");
        }

        var model = SiglipModel.Create(metadata.Config, device);
        try
        {
            model.load(weights, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.Runtime.InteropServices.ExternalException)
        {
            model.Dispose();
            throw new InvalidDataException($"checkpoint weights {weights} do not fit architecture {metadata.Architecture} with {metadata.Config}: {e.Message}", e);
        }

        return (model, metadata);
    }

    public static string HashFile(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }
}
