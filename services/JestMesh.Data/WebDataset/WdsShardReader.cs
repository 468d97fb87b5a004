using System.Formats.Tar;
using System.Text;

namespace JestMesh.Data.WebDataset;

/// <summary>
/// Reads one WebDataset tar shard with the framework's tar reader. Entries are grouped into samples
/// by key (consecutive entries with the same KEY, as WebDataset writes them). A sample without an
/// image or with a missing or empty caption is skipped; a shard that is corrupt or ends early keeps
/// the samples completed before the damage and skips the rest as one entry naming the place.
/// </summary>
public static class WdsShardReader
{
    /// <summary>Every complete sample of <paramref name="path"/>, in file order; skips go to <paramref name="skipped"/>.</summary>
    public static List<WdsSample> Read(string path, Action<WdsSkip> skipped)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(skipped);
        var shard = Path.GetFileName(path);
        var samples = new List<WdsSample>();
        var group = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string? key = null;

        void Flush()
        {
            if (key is not null)
            {
                var sample = Assemble(shard, key, group, out var reason);
                if (sample is null)
                {
                    skipped(new WdsSkip(shard, key, reason!));
                }
                else
                {
                    samples.Add(sample);
                }
            }
            group.Clear();
            key = null;
        }

        try
        {
            using var file = File.OpenRead(path);
            using var reader = new TarReader(file);
            while (reader.GetNextEntry(copyData: false) is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                {
                    continue;
                }
                var (entryKey, extension) = SplitName(entry.Name);
                if (entryKey != key)
                {
                    Flush();
                    key = entryKey;
                }
                var data = new byte[entry.Length];
                if (entry.DataStream is { } stream)
                {
                    stream.ReadExactly(data);
                }
                group[extension] = data;
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or IOException or ArgumentException)
        {
            // The sample being read when the damage was found is incomplete: it goes with the rest.
            var at = key ?? "(start)";
            group.Clear();
            key = null;
            skipped(new WdsSkip(shard, at, $"shard is corrupt or truncated after {samples.Count} complete samples; the rest of the shard is skipped ({ex.GetType().Name}: {ex.Message})"));
            return samples;
        }
        Flush();
        return samples;
    }

    /// <summary>"dir/abc.def.png" → ("dir/abc", "def.png"): the key ends at the first dot of the file name.</summary>
    public static (string Key, string Extension) SplitName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var slash = name.LastIndexOf('/');
        var dot = name.IndexOf('.', slash + 1);
        return dot < 0 ? (name, "") : (name[..dot], name[(dot + 1)..].ToLowerInvariant());
    }

    private static WdsSample? Assemble(string shard, string key, Dictionary<string, byte[]> files, out string? reason)
    {
        reason = null;
        byte[]? image;
        ImageEncoding encoding;
        if (files.TryGetValue("png", out image))
        {
            encoding = ImageEncoding.Png;
        }
        else if (files.TryGetValue("jpg", out image) || files.TryGetValue("jpeg", out image))
        {
            encoding = ImageEncoding.Jpeg;
        }
        else
        {
            reason = $"no image (.png, .jpg or .jpeg) among [{string.Join(", ", files.Keys)}]";
            return null;
        }
        if (!files.TryGetValue("txt", out var text))
        {
            reason = "no caption (.txt)";
            return null;
        }
        var caption = Encoding.UTF8.GetString(text).Trim();
        if (caption.Length == 0)
        {
            reason = "empty caption";
            return null;
        }
        var json = files.TryGetValue("json", out var j) ? Encoding.UTF8.GetString(j) : null;
        return new WdsSample(shard, key, image, encoding, caption, json);
    }
}
