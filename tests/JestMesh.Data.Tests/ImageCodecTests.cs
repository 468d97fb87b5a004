using JestMesh.Data.WebDataset;
using SkiaSharp;

namespace JestMesh.Data.Tests;

[Trait("Tier", "Unit")]
public sealed class ImageCodecTests
{
    [Fact]
    public void A_grey_png_comes_back_exactly_and_normalises_as_declared()
    {
        var pixels = Gradient(28, 28);
        var png = ImageCodec.EncodePngGrey(pixels, 28, 28);

        Assert.Equal(pixels, ImageCodec.DecodeGrey(png, 28, 28));
        var x = new float[28 * 28];
        ImageCodec.DecodeNormalised(png, 1, 28, 28, [0.25f], [0.5f], x);
        for (var i = 0; i < x.Length; i++)
        {
            Assert.Equal(((pixels[i] / 255f) - 0.25f) / 0.5f, x[i]);
        }
    }

    [Fact]
    public void A_colour_jpeg_decodes_to_channels_close_to_its_pixels_and_is_resized_when_asked()
    {
        // A flat colour survives JPEG up to rounding; 3 channels are R, G, B planes.
        using var surface = SKSurface.Create(new SKImageInfo(40, 30, SKColorType.Rgba8888, SKAlphaType.Premul));
        surface.Canvas.Clear(new SKColor(200, 100, 50));
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, 95);
        var jpeg = data.ToArray();

        var x = new float[3 * 16 * 16];
        ImageCodec.DecodeNormalised(jpeg, 3, 16, 16, [0f, 0f, 0f], [1f, 1f, 1f], x);
        Assert.All(x.AsSpan(0, 256).ToArray(), v => Assert.Equal(200 / 255f, v, 0.02f));
        Assert.All(x.AsSpan(256, 256).ToArray(), v => Assert.Equal(100 / 255f, v, 0.02f));
        Assert.All(x.AsSpan(512, 256).ToArray(), v => Assert.Equal(50 / 255f, v, 0.02f));
        var grey = ImageCodec.DecodeGrey(jpeg, 28, 28);
        Assert.All(grey, g => Assert.InRange(g, 119, 129)); // (299·200 + 587·100 + 114·50 + 500) / 1000 = 124, give or take JPEG rounding
    }

    [Fact]
    public void Bytes_that_are_not_an_image_or_a_cut_image_are_rejected_with_the_reason()
    {
        var png = ImageCodec.EncodePngGrey(Gradient(28, 28), 28, 28);
        Assert.Contains("does not decode", Assert.Throws<SampleRejectedException>(() => ImageCodec.DecodeGrey([1, 2, 3], 28, 28)).Message, StringComparison.Ordinal);
        Assert.Contains("does not decode", Assert.Throws<SampleRejectedException>(() => ImageCodec.DecodeGrey(png[..(png.Length / 2)], 28, 28)).Message, StringComparison.Ordinal);
    }

    private static byte[] Gradient(int width, int height)
    {
        var pixels = new byte[width * height];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = (byte)((i * 7) % 256);
        }
        return pixels;
    }
}
