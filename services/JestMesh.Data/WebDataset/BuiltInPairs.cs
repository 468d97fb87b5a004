using System.Text.Json;

namespace JestMesh.Data.WebDataset;

/// <summary>A WebDataset sample as the built-in models take it: 28 x 28 grey pixels and caption ids of the built-in vocabulary.</summary>
/// <param name="Sample">The stored sample (key, encoded bytes, caption text).</param>
/// <param name="Pixels">28 x 28 grey pixels, row-major.</param>
/// <param name="Tokens">Caption ids padded to <see cref="Captions.MaxTokens"/>.</param>
/// <param name="Label">From KEY.json "label" when present, else -1.</param>
/// <param name="Kind">From KEY.json "kind" ("clean", "swapped", "duplicate") when present, else null (unknown).</param>
public sealed record WdsPair(WdsSample Sample, byte[] Pixels, int[] Tokens, int Label, PairKind? Kind)
{
    public long Id => Sample.Id;
}

/// <summary>
/// The decoder from WebDataset samples to <see cref="WdsPair"/>s, and the writer of the built-in pool as
/// shards (`jestmesh data wds`). Reads KEY.json fields "label", "kind" and "curated" when present.
/// </summary>
public static class BuiltInPairs
{
    /// <summary>Decodes a sample for the built-in models; a sample they cannot take is rejected with the reason.</summary>
    public static WdsPair Decode(WdsSample sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        var pixels = ImageCodec.DecodeGrey(sample.Image, ImageSet.Side, ImageSet.Side);
        // The built-in learner takes the caption's words it knows; the text itself travels intact (Example.caption) for
        // other learners and for reference bundles, so a caption in other words is not a reason to skip the sample.
        var tokens = Captions.EncodeKnownWords(sample.Caption, out _);
        var (label, kind) = ReadMeta(sample);
        return new WdsPair(sample, pixels, tokens, label, kind);
    }

    private static (int Label, PairKind? Kind) ReadMeta(WdsSample sample)
    {
        if (sample.Json is null)
        {
            return (-1, null);
        }
        try
        {
            using var doc = JsonDocument.Parse(sample.Json);
            var root = doc.RootElement;
            var label = root.TryGetProperty("label", out var l) && l.ValueKind == JsonValueKind.Number ? l.GetInt32() : -1;
            PairKind? kind = root.TryGetProperty("kind", out var k) && k.ValueKind == JsonValueKind.String
                ? k.GetString() switch
                {
                    "clean" => PairKind.Clean,
                    "swapped" => PairKind.Swapped,
                    "duplicate" => PairKind.Duplicate,
                    _ => null,
                }
                : null;
            return (label, kind);
        }
        catch (JsonException ex)
        {
            throw new SampleRejectedException($"KEY.json is not valid JSON ({ex.Message})");
        }
    }
}
