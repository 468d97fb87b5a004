using System.Runtime.InteropServices;
using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models;

/// <summary>Bulk copies between .NET arrays and CPU tensors (never element by element).</summary>
public static class TensorConvert
{
    /// <summary>count×784 bytes → uint8 tensor [count, 1, 28, 28].</summary>
    public static Tensor Images(ReadOnlySpan<byte> pixels, int count)
    {
        if (pixels.Length != count * ImageSet.PixelsPerImage)
        {
            throw new ArgumentException($"pixels holds {pixels.Length} bytes, {count} images need {count * ImageSet.PixelsPerImage}.", nameof(pixels));
        }

        var t = empty([count, 1, ImageSet.Side, ImageSet.Side], ScalarType.Byte);
        pixels.CopyTo(t.bytes);
        return t;
    }

    /// <summary>Image sides <see cref="Downsample"/> accepts: the divisors of 28 from 7 up (28 leaves images as they are).</summary>
    public static bool IsScoringResolution(int resolution) => resolution is 7 or 14 or ImageSet.Side;

    /// <summary>
    /// uint8 images [N,1,28,28] → uint8 [N,1,R,R]: each output pixel is the mean of a (28/R)×(28/R) block,
    /// rounded to 8 bits (a low-resolution image as a camera or thumbnailer would store it).
    /// </summary>
    public static Tensor Downsample(Tensor images, int resolution)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (!IsScoringResolution(resolution))
        {
            throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "the resolution must be 7, 14 or 28 (a divisor of 28).");
        }

        var factor = ImageSet.Side / resolution;
        using var x = images.to_type(ScalarType.Float32);
        using var pooled = nn.functional.avg_pool2d(x, factor);
        using var rounded = pooled.round_();
        return rounded.to_type(ScalarType.Byte);
    }

    /// <summary>Token rows (each <paramref name="maxTokens"/> long, 0-padded) → int64 tensor [count, maxTokens].</summary>
    public static Tensor Tokens(IReadOnlyList<int[]> tokens, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var flat = new int[tokens.Count * maxTokens];
        for (var i = 0; i < tokens.Count; i++)
        {
            var row = tokens[i];
            if (row.Length > maxTokens)
            {
                throw new ArgumentException($"tokens[{i}] has {row.Length} tokens, more than {maxTokens}.", nameof(tokens));
            }

            row.CopyTo(flat.AsSpan(i * maxTokens));
        }

        using var t = empty([tokens.Count, maxTokens], ScalarType.Int32);
        MemoryMarshal.AsBytes(flat.AsSpan()).CopyTo(t.bytes);
        return t.to_type(ScalarType.Int64);
    }

    public static Tensor Int64(ReadOnlySpan<long> values)
    {
        var t = empty([values.Length], ScalarType.Int64);
        MemoryMarshal.AsBytes(values).CopyTo(t.bytes);
        return t;
    }

    /// <summary>Copies a float32 tensor (any shape) into a new array, row-major.</summary>
    public static float[] ToArray(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var c = tensor.to_type(ScalarType.Float32).contiguous();
        var result = new float[c.numel()];
        MemoryMarshal.Cast<byte, float>(c.bytes).CopyTo(result);
        return result;
    }

    public static void CopyTo(Tensor tensor, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var c = tensor.to_type(ScalarType.Float32).contiguous();
        MemoryMarshal.Cast<byte, float>(c.bytes).CopyTo(destination);
    }
}
