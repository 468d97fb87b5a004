using System.Buffers.Binary;
using System.IO.Compression;

namespace JestMesh.Data;

/// <summary>Fashion-MNIST images (28×28 grey, row-major bytes) and their class labels.</summary>
public sealed class ImageSet
{
    public const int Side = 28;
    public const int PixelsPerImage = Side * Side;

    public ImageSet(byte[] pixels, byte[] labels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (pixels.Length != labels.Length * PixelsPerImage)
        {
            throw new ArgumentException(
                $"pixels has {pixels.Length} bytes but {labels.Length} labels need {labels.Length * PixelsPerImage}.", nameof(pixels));
        }

        Pixels = pixels;
        Labels = labels;
    }

    public byte[] Pixels { get; }

    public byte[] Labels { get; }

    public int Count => Labels.Length;

    public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(index * PixelsPerImage, PixelsPerImage);
}

/// <summary>Reads the original Fashion-MNIST IDX gzip files.</summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const int ClassCount = 10;
    public const string InstallHint = "install it with `apt-get install -y dataset-fashion-mnist`";

    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;

    /// <summary>Class names in label order, as the dataset defines them.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    public static ImageSet LoadTrain(string directory) => Load(directory, "train", 60_000);

    public static ImageSet LoadTest(string directory) => Load(directory, "t10k", 10_000);

    private static ImageSet Load(string directory, string prefix, int expectedCount)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var imagesPath = Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz");
        var labelsPath = Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz");
        var pixels = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != expectedCount || pixels.Length != expectedCount * ImageSet.PixelsPerImage)
        {
            throw new InvalidDataException(
                $"{imagesPath} / {labelsPath}: expected {expectedCount} examples, found {pixels.Length / ImageSet.PixelsPerImage} images " +
                $"and {labels.Length} labels; the files are not the original Fashion-MNIST ({InstallHint}).");
        }

        return new ImageSet(pixels, labels);
    }

    /// <summary>Reads an IDX3 image file (gzip): returns count×28×28 bytes, row-major.</summary>
    public static byte[] ReadImages(string path)
    {
        var data = Decompress(path);
        var header = Header(data, path, ImagesMagic, 3);
        if (header[1] != ImageSet.Side || header[2] != ImageSet.Side)
        {
            throw Corrupt(path, $"images are {header[1]}×{header[2]}, expected {ImageSet.Side}×{ImageSet.Side}");
        }

        return Payload(data, path, 16, (long)header[0] * ImageSet.PixelsPerImage);
    }

    /// <summary>Reads an IDX1 label file (gzip) and checks every label is a valid class.</summary>
    public static byte[] ReadLabels(string path)
    {
        var data = Decompress(path);
        var header = Header(data, path, LabelsMagic, 1);
        var labels = Payload(data, path, 8, header[0]);
        var bad = Array.FindIndex(labels, l => l >= ClassCount);
        if (bad >= 0)
        {
            throw Corrupt(path, $"label {labels[bad]} at index {bad} is not a class in 0..{ClassCount - 1}");
        }

        return labels;
    }

    private static byte[] Decompress(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Fashion-MNIST file {path} is missing; {InstallHint}.", path);
        }

        try
        {
            using var file = File.OpenRead(path);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var buffer = new MemoryStream();
            gzip.CopyTo(buffer);
            return buffer.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw Corrupt(path, $"not a valid gzip stream ({e.Message})");
        }
        catch (EndOfStreamException e)
        {
            throw Corrupt(path, $"the gzip stream ends early ({e.Message})");
        }
    }

    private static int[] Header(byte[] data, string path, int magic, int dims)
    {
        var headerBytes = 4 + (4 * dims);
        if (data.Length < headerBytes)
        {
            throw Corrupt(path, $"{data.Length} bytes is shorter than the {headerBytes}-byte IDX header");
        }

        var found = BinaryPrimitives.ReadInt32BigEndian(data);
        if (found != magic)
        {
            throw Corrupt(path, $"magic number 0x{found:X8}, expected 0x{magic:X8}");
        }

        var sizes = new int[dims];
        for (var i = 0; i < dims; i++)
        {
            sizes[i] = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4 + (4 * i)));
            if (sizes[i] < 0)
            {
                throw Corrupt(path, $"dimension {i} is negative ({sizes[i]})");
            }
        }

        return sizes;
    }

    private static byte[] Payload(byte[] data, string path, int offset, long expected)
    {
        if (data.Length - offset != expected)
        {
            throw Corrupt(path, $"the header promises {expected} data bytes but the file holds {data.Length - offset} (truncated or padded)");
        }

        return data.AsSpan(offset).ToArray();
    }

    private static InvalidDataException Corrupt(string path, string what) =>
        new($"Fashion-MNIST file {path} is corrupt: {what}; reinstall it with `apt-get install -y --reinstall dataset-fashion-mnist`.");
}
