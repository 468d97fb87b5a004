namespace JestMesh.Data.WebDataset;

/// <summary>
/// A directory of WebDataset .tar shards as a stream of examples: the one reader Ingest,
/// `train --inproc --data` and `score` use. Streams shard by shard (one shard in memory). Every
/// sample that is not streamed (missing image or caption, damaged shard, refused by the caller's
/// decoder, id already seen in the epoch) is reported to the skip callback and counted in
/// <see cref="Skipped"/>: nothing is dropped without a record.
/// </summary>
public sealed class WdsSource
{
    private readonly Action<WdsSkip>? _onSkip;
    private readonly List<WdsSkip> _skips = [];
    private readonly Lock _gate = new();

    public WdsSource(string directory, Action<WdsSkip>? onSkip = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"WebDataset directory {directory} does not exist.");
        }
        Root = Path.GetFullPath(directory);
        Shards = Directory.GetFiles(directory, "*.tar").Order(StringComparer.Ordinal).ToArray();
        if (Shards.Count == 0)
        {
            throw new InvalidDataException($"WebDataset directory {directory} holds no .tar shards.");
        }
        _onSkip = onSkip;
        var listing = string.Join('\n', Shards.Select(f => $"{Path.GetFileName(f)}|{new FileInfo(f).Length}"));
        Fingerprint = "wds-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(listing)))[..16];
    }

    /// <summary>Hash of the shard names and sizes: the source's data fingerprint on the wire and in metrics.</summary>
    public string Fingerprint { get; }

    public string Root { get; }

    /// <summary>Shard paths in ordinal name order (the index the order is defined on).</summary>
    public IReadOnlyList<string> Shards { get; }

    /// <summary>Examples streamed so far (every epoch counts).</summary>
    public long Streamed { get; private set; }

    /// <summary>Every skip so far, in the order met.</summary>
    public IReadOnlyList<WdsSkip> Skipped
    {
        get
        {
            lock (_gate)
            {
                return [.. _skips];
            }
        }
    }

    /// <summary>Every sample in shard name order and file order, decoded by <paramref name="decode"/> (for offline scoring).</summary>
    public IEnumerable<T> InFileOrder<T>(Func<WdsSample, T> decode)
    {
        ArgumentNullException.ThrowIfNull(decode);
        var seen = new HashSet<long>();
        foreach (var shard in Shards)
        {
            foreach (var sample in WdsShardReader.Read(shard, Skip))
            {
                if (TryDecode(sample, decode, seen, out var item))
                {
                    yield return item;
                }
            }
        }
    }

    /// <summary>
    /// Super-batches of <paramref name="superBatchSize"/> decoded examples over <paramref name="epochs"/>
    /// epochs in the <see cref="ShardOrder"/> of <paramref name="orderSeed"/>.
    /// </summary>
    public IEnumerable<List<T>> SuperBatches<T>(int superBatchSize, int orderSeed, int epochs, Func<WdsSample, T> decode)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(superBatchSize, 1);
        ArgumentNullException.ThrowIfNull(decode);
        return Enumerate(superBatchSize, orderSeed, epochs, decode);
    }

    private IEnumerable<List<T>> Enumerate<T>(int superBatchSize, int orderSeed, int epochs, Func<WdsSample, T> decode)
    {
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            var seen = new HashSet<long>();
            var batch = new List<T>(superBatchSize);
            var yielded = false;
            foreach (var s in ShardOrder.Shards(Shards.Count, orderSeed, epoch))
            {
                var samples = WdsShardReader.Read(Shards[s], Skip);
                foreach (var i in ShardOrder.Within(samples.Count, orderSeed, epoch, s))
                {
                    if (!TryDecode(samples[i], decode, seen, out var item))
                    {
                        continue;
                    }
                    batch.Add(item);
                    if (batch.Count == superBatchSize)
                    {
                        yield return batch;
                        yielded = true;
                        batch = new List<T>(superBatchSize);
                    }
                }
            }
            if (!yielded)
            {
                throw new InvalidDataException(
                    $"WebDataset directory {Root}: epoch {epoch} streamed {batch.Count} usable samples, fewer than one super-batch of {superBatchSize} ({_skips.Count} skipped).");
            }
        }
    }

    private bool TryDecode<T>(WdsSample sample, Func<WdsSample, T> decode, HashSet<long> seen, out T item)
    {
        item = default!;
        if (!seen.Add(sample.Id))
        {
            Skip(new WdsSkip(sample.Shard, sample.Key, "its id was already streamed in this pass (duplicate key in the shard)"));
            return false;
        }
        try
        {
            item = decode(sample);
        }
        catch (SampleRejectedException ex)
        {
            Skip(new WdsSkip(sample.Shard, sample.Key, ex.Message));
            return false;
        }
        Streamed++;
        return true;
    }

    private void Skip(WdsSkip skip)
    {
        lock (_gate)
        {
            _skips.Add(skip);
        }
        _onSkip?.Invoke(skip);
    }
}
