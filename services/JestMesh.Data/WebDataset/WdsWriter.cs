using System.Formats.Tar;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace JestMesh.Data.WebDataset;

/// <summary>
/// Writes pairs as WebDataset shards (KEY.png + KEY.txt + KEY.json, ustar, fixed timestamps so the
/// same data always gives the same bytes): the built-in data set as `jestmesh data wds` exports it.
/// </summary>
public static class WdsWriter
{
    /// <summary>Key of a built-in pair in its shard: its stable id, 8 digits.</summary>
    public static string KeyOf(PairExample pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        return pair.Id.ToString("D8", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Writes the noisy pool to OUT/pool/pool-NNNNNN.tar (pool order) and the curated set to
    /// OUT/curated/curated-NNNNNN.tar, <paramref name="shardSize"/> samples per shard. Returns the shard paths.
    /// </summary>
    public static IReadOnlyList<string> WriteDataset(PairDataset data, string outDirectory, int shardSize)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        var written = new List<string>();
        written.AddRange(WriteShards(data, data.Pool, Path.Combine(outDirectory, "pool"), "pool", shardSize, curated: false));
        written.AddRange(WriteShards(data, data.Curated, Path.Combine(outDirectory, "curated"), "curated", shardSize, curated: true));
        return written;
    }

    private static List<string> WriteShards(PairDataset data, IReadOnlyList<PairExample> pairs, string directory, string prefix, int shardSize, bool curated)
    {
        Directory.CreateDirectory(directory);
        var paths = new List<string>();
        for (var start = 0; start < pairs.Count; start += shardSize)
        {
            var path = Path.Combine(directory, string.Create(CultureInfo.InvariantCulture, $"{prefix}-{start / shardSize:D6}.tar"));
            WriteShard(path, Enumerable.Range(start, Math.Min(pairs.Count, start + shardSize) - start).Select(i =>
            {
                var pair = pairs[i];
                var png = ImageCodec.EncodePngGrey(data.Train.Image(pair.ImageIndex), ImageSet.Side, ImageSet.Side);
                var json = JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["id"] = pair.Id,
                    ["label"] = pair.Label,
                    ["kind"] = pair.Kind.ToString().ToLowerInvariant(),
                    ["curated"] = curated,
                    ["image_index"] = pair.ImageIndex,
                });
                return new WdsSample(Path.GetFileName(path), KeyOf(pair), png, ImageEncoding.Png, Captions.Decode(pair.Tokens), json);
            }));
            paths.Add(path);
        }
        return paths;
    }

    /// <summary>
    /// Writes <paramref name="samples"/> as one shard at <paramref name="path"/> (KEY.png or KEY.jpg, KEY.txt, and
    /// KEY.json when the sample has one), atomically: a temporary file renamed into place. Their Shard is not used.
    /// </summary>
    public static void WriteShard(string path, IEnumerable<WdsSample> samples)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(samples);
        var temp = path + ".tmp";
        using (var file = File.Create(temp))
        using (var tar = new TarWriter(file, TarEntryFormat.Ustar, leaveOpen: false))
        {
            foreach (var sample in samples)
            {
                Add(tar, sample.Key + (sample.Encoding == ImageEncoding.Png ? ".png" : ".jpg"), sample.Image);
                Add(tar, sample.Key + ".txt", Encoding.UTF8.GetBytes(sample.Caption));
                if (sample.Json is not null)
                {
                    Add(tar, sample.Key + ".json", Encoding.UTF8.GetBytes(sample.Json));
                }
            }
        }
        File.Move(temp, path, overwrite: true);
    }

    private static void Add(TarWriter tar, string name, byte[] bytes)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        var entry = new UstarTarEntry(TarEntryType.RegularFile, name)
        {
            DataStream = stream,
            ModificationTime = DateTimeOffset.UnixEpoch,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        };
        tar.WriteEntry(entry);
    }
}
