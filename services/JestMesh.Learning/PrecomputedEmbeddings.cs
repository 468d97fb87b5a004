using System.Text.Json;
using JestMesh.Data;
using JestMesh.Data.WebDataset;

namespace JestMesh.Learning;

/// <summary>
/// Reference embeddings precomputed by `jestmesh score` (OUT/image.npy, text.npy, keys.txt,
/// summary.json), loaded into the reference cache keyed by each row's source key (the id
/// <see cref="SourceKeys.Id"/> derives from "SHARD/KEY"), so the model only runs for examples the file
/// lacks, as the JEST paper caches reference scores for the whole pool.
/// </summary>
public static class PrecomputedEmbeddings
{
    /// <summary>Adds every row to <paramref name="cache"/>; returns what was loaded.</summary>
    /// <exception cref="InvalidDataException">The files are missing, malformed, of another width, or of another reference (named).</exception>
    public static string LoadInto(EmbeddingCache cache, string directory, string referenceSha256)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var summaryPath = Path.Combine(directory, "summary.json");
        if (!File.Exists(summaryPath))
        {
            throw new InvalidDataException($"{summaryPath}: missing (precomputed embeddings are the output directory of `jestmesh score`).");
        }
        using (var summary = JsonDocument.Parse(File.ReadAllText(summaryPath)))
        {
            var sha = summary.RootElement.TryGetProperty("reference_sha256", out var s) ? s.GetString() : null;
            if (!string.Equals(sha, referenceSha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException($"{summaryPath}: embeddings of reference {sha ?? "(unknown)"}, but the configured reference is {referenceSha256}.");
            }
        }
        var keysPath = Path.Combine(directory, "keys.txt");
        if (!File.Exists(keysPath))
        {
            throw new InvalidDataException($"{keysPath}: missing.");
        }
        var keys = File.ReadAllLines(keysPath);
        var (image, imageShape) = Read(Path.Combine(directory, "image.npy"));
        var (text, textShape) = Read(Path.Combine(directory, "text.npy"));
        var d = cache.Dim;
        foreach (var (path, shape) in new[] { ("image.npy", imageShape), ("text.npy", textShape) })
        {
            if (shape.Length != 2 || shape[0] != keys.Length || shape[1] != d)
            {
                throw new InvalidDataException($"{Path.Combine(directory, path)}: shape [{string.Join(", ", shape)}], expected [{keys.Length}, {d}] (keys.txt rows, reference width).");
            }
        }
        for (var i = 0; i < keys.Length; i++)
        {
            var slash = keys[i].IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0)
            {
                throw new InvalidDataException($"{Path.Combine(directory, "keys.txt")} line {i + 1}: '{keys[i]}' is not SHARD/KEY.");
            }
            cache.Add(SourceKeys.Id(keys[i][..slash], keys[i][(slash + 1)..]), image.AsSpan(i * d, d), text.AsSpan(i * d, d));
        }
        var kept = Math.Min(keys.Length, cache.Capacity);
        return kept < keys.Length
            ? $"loaded {keys.Length} precomputed embeddings from {directory}; the cache holds {cache.Capacity}, so only the last {kept} are kept"
            : $"loaded {keys.Length} precomputed embeddings from {directory}";
    }

    private static (float[] Data, int[] Shape) Read(string path)
    {
        try
        {
            return NpyFile.ReadFloat32(path);
        }
        catch (NpyFormatException ex)
        {
            throw new InvalidDataException($"{path}: {ex.Message}", ex);
        }
    }
}
