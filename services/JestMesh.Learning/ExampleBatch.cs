using JestMesh.Data;
using JestMesh.Data.WebDataset;

namespace JestMesh.Learning;

/// <summary>
/// Examples as the models take them, in plain arrays: ids, grey 28×28 pixels (row-major, one image
/// after another) and caption token rows. Every path builds one of these, from the built-in pool or
/// from received protobuf examples, so the models see the same inputs whichever way data came.
/// </summary>
public sealed class ExampleBatch
{
    public ExampleBatch(long[] ids, byte[] pixels, int[][] tokens)
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
        Ids = ids;
        Pixels = pixels;
        Tokens = tokens;
    }

    public long[] Ids { get; }

    public byte[] Pixels { get; }

    public int[][] Tokens { get; }

    public int Count => Ids.Length;

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
        for (var i = 0; i < pairs.Count; i++)
        {
            ids[i] = pairs[i].Id;
            pairs[i].Pixels.CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens[i] = pairs[i].Tokens;
        }
        return new ExampleBatch(ids, pixels, tokens);
    }

    /// <summary>The rows at <paramref name="indices"/>, in that order (a selected batch from its candidates).</summary>
    public ExampleBatch Rows(ReadOnlySpan<int> indices)
    {
        var ids = new long[indices.Length];
        var pixels = new byte[indices.Length * ImageSet.PixelsPerImage];
        var tokens = new int[indices.Length][];
        for (var k = 0; k < indices.Length; k++)
        {
            var i = indices[k];
            ids[k] = Ids[i];
            Pixels.AsSpan(i * ImageSet.PixelsPerImage, ImageSet.PixelsPerImage).CopyTo(pixels.AsSpan(k * ImageSet.PixelsPerImage));
            tokens[k] = Tokens[i];
        }
        return new ExampleBatch(ids, pixels, tokens);
    }
}
