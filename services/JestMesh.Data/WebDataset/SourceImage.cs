namespace JestMesh.Data.WebDataset;

/// <summary>
/// An example's image as its source holds it: the stored PNG/JPEG bytes of a WebDataset sample, or raw
/// grey pixels (the built-in pool, or an example that carries no encoded image). <see cref="ImageCodec"/>
/// decodes both to the same 8-bit RGBA a reference model's input is made from; grey pixels become
/// R = G = B = p, exactly what decoding their grey PNG gives.
/// </summary>
public sealed class SourceImage
{
    private SourceImage(byte[] bytes, int width, int height)
    {
        Bytes = bytes;
        Width = width;
        Height = height;
    }

    /// <summary>The encoded bytes, or the grey pixels (row-major, one byte per pixel).</summary>
    public byte[] Bytes { get; }

    /// <summary>Width and height of grey pixels; 0 for encoded bytes (their header says).</summary>
    public int Width { get; }

    public int Height { get; }

    public bool IsEncoded => Width == 0;

    /// <summary>PNG or JPEG bytes as stored.</summary>
    public static SourceImage Encoded(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        return new SourceImage(bytes, 0, 0);
    }

    /// <summary>Raw grey pixels of a <paramref name="width"/> x <paramref name="height"/> image.</summary>
    public static SourceImage Grey(byte[] pixels, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (pixels.Length != width * height)
        {
            throw new ArgumentException($"{pixels.Length} grey pixels for a {width}x{height} image.", nameof(pixels));
        }
        return new SourceImage(pixels, width, height);
    }
}

/// <summary>
/// What an example was at its source, as far as it carried it: the encoded image and the caption text
/// (either may be absent: the built-in pool has raw grey pixels and caption ids only), and a name for
/// messages (SHARD/KEY, or the id).
/// </summary>
public sealed record StoredExample(byte[]? EncodedImage, string? Caption, string Name);
