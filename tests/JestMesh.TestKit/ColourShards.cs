using System.Globalization;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using SkiaSharp;

namespace JestMesh.TestKit;

/// <summary>
/// A small WebDataset pool that is not Fashion-MNIST-shaped: colour images of another size, PNG and JPEG
/// alternately, each a Fashion-MNIST image tinted by its class (R = p, G = 255 − p, B = 25·class) and
/// scaled to <c>width</c> x <c>height</c>; captions are the built-in pool's caption text (so Ingest,
/// whose built-in learner takes the built-in vocabulary only, publishes every sample).
/// </summary>
public static class ColourShards
{
    /// <summary>Writes <paramref name="shards"/> shards of <paramref name="perShard"/> samples to <paramref name="directory"/>; returns every sample's SHARD/KEY.</summary>
    public static IReadOnlyList<string> Write(string directory, PairDataset data, int shards, int perShard, int width = 40, int height = 30)
    {
        ArgumentNullException.ThrowIfNull(data);
        Directory.CreateDirectory(directory);
        var names = new List<string>();
        for (var s = 0; s < shards; s++)
        {
            var shard = string.Create(CultureInfo.InvariantCulture, $"colour-{s:D6}.tar");
            var samples = new List<WdsSample>();
            for (var k = 0; k < perShard; k++)
            {
                var pair = data.Pool[(s * perShard) + k];
                var jpeg = k % 2 == 1;
                var key = string.Create(CultureInfo.InvariantCulture, $"c{(s * perShard) + k:D6}");
                var image = Encode(data.Train.Image(pair.ImageIndex), pair.Label, width, height, jpeg);
                samples.Add(new WdsSample(shard, key, image, jpeg ? ImageEncoding.Jpeg : ImageEncoding.Png, Captions.Decode(pair.Tokens),
                    string.Create(CultureInfo.InvariantCulture, $"{{\"label\": {pair.Label}, \"kind\": \"{pair.Kind.ToString().ToLowerInvariant()}\"}}")));
                names.Add(SourceKeys.Name(shard, key));
            }
            WdsWriter.WriteShard(Path.Combine(directory, shard), samples);
        }
        return names;
    }

    private static byte[] Encode(ReadOnlySpan<byte> grey, int label, int width, int height, bool jpeg)
    {
        var rgba = new byte[ImageSet.PixelsPerImage * 4];
        for (var i = 0; i < ImageSet.PixelsPerImage; i++)
        {
            rgba[4 * i] = grey[i];
            rgba[(4 * i) + 1] = (byte)(255 - grey[i]);
            rgba[(4 * i) + 2] = (byte)(25 * label);
            rgba[(4 * i) + 3] = 255;
        }
        using var small = SKImage.FromPixelCopy(new SKImageInfo(ImageSet.Side, ImageSet.Side, SKColorType.Rgba8888, SKAlphaType.Unpremul), rgba)
            ?? throw new InvalidOperationException("SkiaSharp refused the pixels.");
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        surface.Canvas.DrawImage(small, new SKRect(0, 0, width, height), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));
        using var scaled = surface.Snapshot();
        using var encoded = scaled.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 90);
        return encoded.ToArray();
    }
}
