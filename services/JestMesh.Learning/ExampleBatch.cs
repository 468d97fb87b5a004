using JestMesh.Data;
using JestMesh.Data.WebDataset;

namespace JestMesh.Learning;

/// <summary>
/// Examples as the models take them, in plain arrays: ids, grey 28×28 pixels (row-major, one image
/// after another) and caption token rows, which the built-in models take; and, where the examples
/// carried them, what they were at their source (encoded image, caption text), which a reference
/// bundle takes (<see cref="ReferenceInput"/>). Every path builds one of these, from the built-in pool,
/// WebDataset samples or received protobuf examples, so the models see the same inputs whichever way data came.
/// </summary>
public sealed class ExampleBatch
{
    private readonly StoredExample?[]? _stored;

    /// <param name="ids">Example ids.</param>
    /// <param name="pixels">Grey 28×28 pixels, one image after another.</param>
    /// <param name="tokens">Caption ids in the built-in vocabulary.</param>
    /// <param name="stored">Per example, what it carried from its source (null entries, or null: nothing but the pixels and ids).</param>
    public ExampleBatch(long[] ids, byte[] pixels, int[][] tokens, StoredExample?[]? stored = null)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(tokens);
        if (pixels.Length != ids.Length * ImageSet.PixelsPerImage)
        {
            throw new ArgumentException($"pixels holds {pixels.Length} bytes; {ids.Length} images need {ids.Length * ImageSet.PixelsPerImage}.", nameof(pixels));
        }
        if (tokens.Length != ids.Length)
        {
            throw new ArgumentException($"tokens has {tokens.Length} rows for {ids.Length} examples.", nameof(tokens));
        }
        if (stored is not null && stored.Length != ids.Length)
        {
            throw new ArgumentException($"stored has {stored.Length} entries for {ids.Length} examples.", nameof(stored));
        }
        Ids = ids;
        Pixels = pixels;
        Tokens = tokens;
        _stored = stored;
    }

    public long[] Ids { get; }

    public byte[] Pixels { get; }

    public int[][] Tokens { get; }

    public int Count => Ids.Length;

    /// <summary>
    /// What a reference bundle is given for example <paramref name="index"/>: its stored encoded image
    /// (PNG/JPEG) when it carried one, else its grey 28×28 pixels; its caption text when it carried one,
    /// else its caption ids decoded in the built-in vocabulary. The one place that choice is made.
    /// </summary>
    public (SourceImage Image, string Caption, string Name) ReferenceInput(int index)
    {
        var stored = _stored?[index];
        var image = stored?.EncodedImage is { Length: > 0 } encoded
            ? SourceImage.Encoded(encoded)
            : SourceImage.Grey(Pixels.AsSpan(index * ImageSet.PixelsPerImage, ImageSet.PixelsPerImage).ToArray(), ImageSet.Side, ImageSet.Side);
        var caption = stored?.Caption is { Length: > 0 } text ? text : Captions.Decode(Tokens[index]);
        return (image, caption, stored?.Name ?? $"id {Ids[index]}");
    }

    /// <summary>The pool examples at <paramref name="positions"/>, in that order.</summary>
    public static ExampleBatch FromPool(PairDataset data, ReadOnlySpan<int> positions)
    {
        ArgumentNullException.ThrowIfNull(data);
        var ids = new long[positions.Length];
        var pixels = new byte[positions.Length * ImageSet.PixelsPerImage];
        var tokens = new int[positions.Length][];
        for (var i = 0; i < positions.Length; i++)
        {
            var pair = data.Pool[positions[i]];
            ids[i] = pair.Id;
            data.Train.Image(pair.ImageIndex).CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens[i] = pair.Tokens;
        }
        return new ExampleBatch(ids, pixels, tokens);
    }

    /// <summary>Decoded WebDataset samples, in that order.</summary>
    public static ExampleBatch FromPairs(IReadOnlyList<WdsPair> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var ids = new long[pairs.Count];
        var pixels = new byte[pairs.Count * ImageSet.PixelsPerImage];
        var tokens = new int[pairs.Count][];
        var stored = new StoredExample?[pairs.Count];
        for (var i = 0; i < pairs.Count; i++)
        {
            ids[i] = pairs[i].Id;
            pairs[i].Pixels.CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens[i] = pairs[i].Tokens;
            var sample = pairs[i].Sample;
            stored[i] = new StoredExample(sample.Image, sample.Caption, sample.Name);
        }
        return new ExampleBatch(ids, pixels, tokens, stored);
    }

    /// <summary>The rows at <paramref name="indices"/>, in that order (a selected batch from its candidates).</summary>
    public ExampleBatch Rows(ReadOnlySpan<int> indices)
    {
        var ids = new long[indices.Length];
        var pixels = new byte[indices.Length * ImageSet.PixelsPerImage];
        var tokens = new int[indices.Length][];
        var stored = _stored is null ? null : new StoredExample?[indices.Length];
        for (var k = 0; k < indices.Length; k++)
        {
            var i = indices[k];
            ids[k] = Ids[i];
            Pixels.AsSpan(i * ImageSet.PixelsPerImage, ImageSet.PixelsPerImage).CopyTo(pixels.AsSpan(k * ImageSet.PixelsPerImage));
            tokens[k] = Tokens[i];
            if (stored is not null)
            {
                stored[k] = _stored![i];
            }
        }
        return new ExampleBatch(ids, pixels, tokens, stored);
    }
}
