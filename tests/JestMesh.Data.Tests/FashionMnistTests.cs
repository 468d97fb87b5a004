using System.Buffers.Binary;
using System.IO.Compression;

namespace JestMesh.Data.Tests;

[Trait("Tier", "Unit")]
public sealed class FashionMnistTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-idx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Real_training_set_has_60k_images_and_6000_per_class()
    {
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        Assert.Equal(60_000, train.Count);
        Assert.Equal(60_000 * 784, train.Pixels.Length);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(6000, train.Labels.Count(l => l == c)));
        Assert.Equal(784, train.Image(59_999).Length);
    }

    [Fact]
    public void Real_test_set_has_10k_images_and_1000_per_class()
    {
        var test = FashionMnist.LoadTest(FashionMnist.DefaultDirectory);
        Assert.Equal(10_000, test.Count);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(1000, test.Labels.Count(l => l == c)));
    }

    [Fact]
    public void Valid_idx_files_parse_to_their_contents()
    {
        var images = Enumerable.Range(0, 3 * 784).Select(i => (byte)(i % 251)).ToArray();
        var imagesPath = Write("img.gz", ImagesFile(3, 28, 28, images));
        var labelsPath = Write("lbl.gz", LabelsFile([7, 0, 9]));
        Assert.Equal(images, FashionMnist.ReadImages(imagesPath));
        Assert.Equal(new byte[] { 7, 0, 9 }, FashionMnist.ReadLabels(labelsPath));
    }

    [Fact]
    public void Missing_file_names_the_file_and_the_package()
    {
        var e = Assert.Throws<FileNotFoundException>(() => FashionMnist.LoadTrain(_dir));
        Assert.Contains(Path.Combine(_dir, "train-images-idx3-ubyte.gz"), e.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install -y dataset-fashion-mnist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_magic_number_is_refused()
    {
        var path = Write("img.gz", LabelsFile(new byte[20]));
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.ReadImages(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("magic number 0x00000801, expected 0x00000803", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_payload_is_refused()
    {
        var full = ImagesFile(2, 28, 28, new byte[2 * 784]);
        var path = Write("img.gz", full[..^100]);
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.ReadImages(path));
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_gzip_stream_is_refused()
    {
        var path = Path.Combine(_dir, "cut.gz");
        var gz = Gzip(ImagesFile(50, 28, 28, Enumerable.Range(0, 50 * 784).Select(i => (byte)(i * 31)).ToArray()));
        File.WriteAllBytes(path, gz[..(gz.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.ReadImages(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Non_gzip_file_is_refused_as_corrupt()
    {
        var path = Path.Combine(_dir, "plain.gz");
        File.WriteAllBytes(path, Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.ReadLabels(path));
        Assert.Contains("corrupt", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_image_size_and_out_of_range_labels_are_refused()
    {
        var img = Write("img.gz", ImagesFile(1, 32, 32, new byte[32 * 32]));
        Assert.Contains("32×32", Assert.Throws<InvalidDataException>(() => FashionMnist.ReadImages(img)).Message, StringComparison.Ordinal);
        var lbl = Write("lbl.gz", LabelsFile([3, 12]));
        Assert.Contains("label 12 at index 1", Assert.Throws<InvalidDataException>(() => FashionMnist.ReadLabels(lbl)).Message, StringComparison.Ordinal);
    }

    private string Write(string name, byte[] raw)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, Gzip(raw));
        return path;
    }

    private static byte[] Gzip(byte[] raw)
    {
        using var buffer = new MemoryStream();
        using (var gz = new GZipStream(buffer, CompressionLevel.Fastest))
        {
            gz.Write(raw);
        }

        return buffer.ToArray();
    }

    private static byte[] ImagesFile(int count, int rows, int cols, byte[] pixels)
    {
        var data = new byte[16 + pixels.Length];
        BinaryPrimitives.WriteInt32BigEndian(data, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(12), cols);
        pixels.CopyTo(data, 16);
        return data;
    }

    private static byte[] LabelsFile(byte[] labels)
    {
        var data = new byte[8 + labels.Length];
        BinaryPrimitives.WriteInt32BigEndian(data, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), labels.Length);
        labels.CopyTo(data, 8);
        return data;
    }
}
