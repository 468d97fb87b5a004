using JestMesh.Data.WebDataset;

namespace JestMesh.Protos.V1;

/// <summary>Received examples as the plain arrays the models take: ids, 28×28 grey pixels one image after another, caption token rows.</summary>
public static class ExampleArrays
{
    /// <summary>Grey pixels of one 28×28 image (the only geometry the built-in models take).</summary>
    public const int PixelsPerImage = SuperBatch.DefaultImageSide * SuperBatch.DefaultImageSide;

    /// <summary>
    /// Ids, pixels and tokens of the examples at <paramref name="indices"/> (all when null), in that
    /// order. An image of the wrong size is an <see cref="InvalidDataException"/> naming
    /// <paramref name="what"/>, the index and the example id.
    /// </summary>
    public static (long[] Ids, byte[] Pixels, int[][] Tokens) Of(IReadOnlyList<Example> examples, string what, IReadOnlyList<int>? indices = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var count = indices?.Count ?? examples.Count;
        var ids = new long[count];
        var pixels = new byte[count * PixelsPerImage];
        var tokens = new int[count][];
        for (var k = 0; k < count; k++)
        {
            var i = indices is null ? k : indices[k];
            var example = examples[i];
            var image = example.Image;
            if (image.Length != PixelsPerImage)
            {
                throw new InvalidDataException($"{what} examples[{i}] (id {example.Id}): image has {image.Length} bytes, expected {PixelsPerImage}.");
            }
            ids[k] = example.Id;
            image.Span.CopyTo(pixels.AsSpan(k * PixelsPerImage));
            tokens[k] = [.. example.CaptionTokens];
        }
        return (ids, pixels, tokens);
    }

    /// <summary>
    /// What the examples at <paramref name="indices"/> (all when null) carried from their source, in that
    /// order: the stored PNG/JPEG bytes (when image_format says so), the caption text (when set) and
    /// SHARD/KEY (or the id); null for an example with neither (the built-in pool), whose grey pixels and
    /// caption ids then stand for it (JestMesh.Learning ExampleBatch.ReferenceInput).
    /// </summary>
    public static StoredExample?[] Stored(IReadOnlyList<Example> examples, IReadOnlyList<int>? indices = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var count = indices?.Count ?? examples.Count;
        var stored = new StoredExample?[count];
        for (var k = 0; k < count; k++)
        {
            var example = examples[indices is null ? k : indices[k]];
            var encoded = example.ImageFormat is ImageFormat.Png or ImageFormat.Jpeg && !example.EncodedImage.IsEmpty ? example.EncodedImage.ToByteArray() : null;
            var caption = example.Caption.Length > 0 ? example.Caption : null;
            if (encoded is null && caption is null)
            {
                continue;
            }
            var name = example.Source is { } source ? SourceKeys.Name(source.Shard, source.Key) : $"id {example.Id}";
            stored[k] = new StoredExample(encoded, caption, name);
        }
        return stored;
    }
}
