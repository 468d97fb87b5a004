using SkiaSharp;

namespace JestMesh.Cli.Tests.Demo;

/// <summary>What a PNG shows, decoded (SkiaSharp, as ScottPlot renders): enough to tell a drawn plot from a blank image.</summary>
internal sealed class PngContent
{
    private readonly SKColor[] _pixels;

    private PngContent(SKColor[] pixels) => _pixels = pixels;

    public static PngContent Read(string path)
    {
        using var bitmap = SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path} is not an image SkiaSharp can decode.");
        Assert.True(bitmap.Width > 100 && bitmap.Height > 100, $"{path}: {bitmap.Width}×{bitmap.Height}");
        return new PngContent(bitmap.Pixels);
    }

    /// <summary>Standard deviation of the pixels' luminance (0–255): 0 for a single-colour image.</summary>
    public double LuminanceStdDev
    {
        get
        {
            var l = _pixels.Select(p => (0.2126 * p.Red) + (0.7152 * p.Green) + (0.0722 * p.Blue)).ToArray();
            var mean = l.Average();
            return Math.Sqrt(l.Average(x => (x - mean) * (x - mean)));
        }
    }

    /// <summary>Share of pixels that are not (nearly) white.</summary>
    public double NonWhiteShare => (double)_pixels.Count(p => p.Red < 240 || p.Green < 240 || p.Blue < 240) / _pixels.Length;

    /// <summary>Share of pixels within a small distance of <paramref name="color"/> (anti-aliased edges excluded).</summary>
    public double Share(ScottPlot.Color color) =>
        (double)_pixels.Count(p => Math.Abs(p.Red - color.R) <= 8 && Math.Abs(p.Green - color.G) <= 8 && Math.Abs(p.Blue - color.B) <= 8) / _pixels.Length;
}
