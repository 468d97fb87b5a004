using SkiaSharp;

namespace JestMesh.Data.WebDataset;

/// <summary>
/// PNG/JPEG decoding (SkiaSharp) to the inputs models take. Decoding is to 8-bit RGBA without colour
/// management, then resized (bilinear) when the stored size differs from the one asked for; grey is
/// (299 R + 587 G + 114 B + 500) / 1000 in integers, so a grey image comes back exactly.
/// </summary>
public static class ImageCodec
{
    /// <summary>PNG bytes of a grey image (row-major, one byte per pixel).</summary>
    public static byte[] EncodePngGrey(ReadOnlySpan<byte> pixels, int width, int height)
    {
        if (pixels.Length != width * height)
        {
            throw new ArgumentException($"{pixels.Length} pixels for a {width}x{height} image.", nameof(pixels));
        }
        var info = new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
        using var image = SKImage.FromPixelCopy(info, pixels) ?? throw new InvalidOperationException("SkiaSharp refused the grey pixels.");
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Grey pixels of <paramref name="encoded"/> at <paramref name="width"/> x <paramref name="height"/>.</summary>
    /// <exception cref="SampleRejectedException">The bytes do not decode.</exception>
    public static byte[] DecodeGrey(byte[] encoded, int width, int height)
    {
        using var bitmap = DecodeRgba(encoded, width, height);
        var rgba = bitmap.GetPixelSpan();
        var grey = new byte[width * height];
        for (var i = 0; i < grey.Length; i++)
        {
            grey[i] = Grey(rgba[4 * i], rgba[(4 * i) + 1], rgba[(4 * i) + 2]);
        }
        return grey;
    }

    /// <summary>
    /// Model input of one image, channels first: x = (p / 255 − mean[c]) / std[c], written to
    /// <paramref name="destination"/> (channels x height x width floats). One channel is grey, three are R, G, B.
    /// The image is decoded (encoded bytes) or taken as R = G = B (grey pixels) to 8-bit RGBA, then
    /// resized (bilinear) when its size differs: one path for every kind of source image.
    /// </summary>
    /// <exception cref="SampleRejectedException">The bytes do not decode.</exception>
    public static void DecodeNormalised(SourceImage image, int channels, int height, int width, float[] mean, float[] std, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (channels is not (1 or 3) || mean.Length != channels || std.Length != channels || destination.Length != channels * height * width)
        {
            throw new ArgumentException($"image input of {channels} channels, {mean.Length} means, {std.Length} stds, {destination.Length} floats for {height}x{width}.");
        }
        using var bitmap = image.IsEncoded ? DecodeRgba(image.Bytes, width, height) : GreyRgba(image, width, height);
        var rgba = bitmap.GetPixelSpan();
        var plane = height * width;
        for (var i = 0; i < plane; i++)
        {
            byte r = rgba[4 * i], g = rgba[(4 * i) + 1], b = rgba[(4 * i) + 2];
            if (channels == 1)
            {
                destination[i] = ((Grey(r, g, b) / 255f) - mean[0]) / std[0];
            }
            else
            {
                destination[i] = ((r / 255f) - mean[0]) / std[0];
                destination[plane + i] = ((g / 255f) - mean[1]) / std[1];
                destination[(2 * plane) + i] = ((b / 255f) - mean[2]) / std[2];
            }
        }
    }

    /// <summary><see cref="DecodeNormalised(SourceImage, int, int, int, float[], float[], Span{float})"/> of encoded bytes.</summary>
    /// <exception cref="SampleRejectedException">The bytes do not decode.</exception>
    public static void DecodeNormalised(byte[] encoded, int channels, int height, int width, float[] mean, float[] std, Span<float> destination) =>
        DecodeNormalised(SourceImage.Encoded(encoded), channels, height, width, mean, std, destination);

    private static byte Grey(byte r, byte g, byte b) => (byte)(((299 * r) + (587 * g) + (114 * b) + 500) / 1000);

    private static SKBitmap DecodeRgba(byte[] encoded, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new SampleRejectedException($"image does not decode ({encoded.Length} bytes, not a PNG or JPEG SkiaSharp reads)");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new SampleRejectedException($"image does not decode ({codec.EncodedFormat} {codec.Info.Width}x{codec.Info.Height}: {result})");
        }
        return Resized(bitmap, width, height);
    }

    /// <summary>Grey pixels as opaque RGBA with R = G = B (what SkiaSharp decodes a grey PNG to), resized like a decoded image.</summary>
    private static SKBitmap GreyRgba(SourceImage image, int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var rgba = bitmap.GetPixelSpan();
        var grey = image.Bytes;
        for (var i = 0; i < grey.Length; i++)
        {
            rgba[4 * i] = rgba[(4 * i) + 1] = rgba[(4 * i) + 2] = grey[i];
            rgba[(4 * i) + 3] = 255;
        }
        return Resized(bitmap, width, height);
    }

    /// <summary><paramref name="bitmap"/> itself at the asked size, else a bilinear resize of it (and <paramref name="bitmap"/> is disposed).</summary>
    private static SKBitmap Resized(SKBitmap bitmap, int width, int height)
    {
        if (bitmap.Width == width && bitmap.Height == height)
        {
            return bitmap;
        }
        using (bitmap)
        {
            var target = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            return bitmap.Resize(target, new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None))
                ?? throw new SampleRejectedException($"image of {bitmap.Width}x{bitmap.Height} could not be resized to {width}x{height}");
        }
    }
}
